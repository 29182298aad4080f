// Small helpers shared by the dashboard pages: JSON calls to pacsflow's API with the login
// session, DICOM JSON values, and element building that only ever sets text (never HTML),
// so that data such as a PatientName cannot inject markup.

export class ApiError extends Error {}

async function checked(response) {
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error) message = body.error;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError(message);
}

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  return (await checked(response)).json();
}

export async function getDicomJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/dicom+json" } });
  if (response.status === 204) return [];
  return (await checked(response)).json();
}

export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return (await checked(response)).json();
}

// el("td", {class: "x", title: "y"}, "text", childElement, ...): attributes are set with
// setAttribute, strings become text nodes.
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

// The first value of a tag ("0020000D") in a DICOM JSON object, or "".
export function dicomValue(item, tag) {
  const value = item[tag]?.Value?.[0];
  if (value === undefined || value === null) return "";
  if (typeof value === "object") return value.Alphabetic ?? "";
  return value;
}

export function dicomValues(item, tag) {
  return (item[tag]?.Value ?? []).map((v) => (typeof v === "object" ? v.Alphabetic ?? "" : v));
}

// "Doe^Jane" -> "Doe, Jane"; a DICOM JSON name object shows its ideographic and phonetic
// groups after the alphabetic one, as DICOM writes them: "Yamada^Tarou=山田^太郎".
export function personName(name) {
  if (!name) return "";
  if (typeof name === "object") {
    const groups = [name.Alphabetic, name.Ideographic, name.Phonetic].map((g) => g ?? "");
    while (groups.length > 1 && !groups.at(-1)) groups.pop();
    return [personName(groups[0]), ...groups.slice(1)].join(" = ");
  }
  const [family, given, middle] = String(name).split("^");
  return [family, [given, middle].filter(Boolean).join(" ")].filter(Boolean).join(", ");
}

// "20250131" or "2025-01-31" -> "2025-01-31"
export function isoDate(value) {
  const text = String(value ?? "");
  const match = /^(\d{4})-?(\d{2})-?(\d{2})/.exec(text);
  return match ? `${match[1]}-${match[2]}-${match[3]}` : text;
}

export function localTime(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export const studyUrl = (study) => `/studies/${encodeURIComponent(study)}`;
export const viewerUrl = (study) => `/viewer?StudyInstanceUIDs=${encodeURIComponent(study)}`;
export const thumbnailUrl = (study, series) =>
  `/dicomweb/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}/thumbnail`;

export function thumbnail(study, series) {
  return el("img", {
    class: "pf-thumb",
    src: thumbnailUrl(study, series),
    alt: "",
    loading: "lazy",
    onerror: (event) => event.target.classList.add("pf-thumb-none"),
  });
}

// A study: its series with thumbnails, downloads, the viewer, the workflow runs that touched
// it and the radiomics results measured on it.
import { clear, dicomValue, dicomValues, el, getDicomJSON, getJSON, isoDate, personName, thumbnail, viewerUrl } from "./api.js";
import { isRunning, runRows, workflowRunner } from "./runs.js";

const REFRESH_MS = 5000;
const study = document.getElementById("study-page").dataset.study;
const quoted = encodeURIComponent(study);

const tags = {
  patientName: "00100010", patientId: "00100020", studyDate: "00080020", description: "00081030",
  accession: "00080050", modalities: "00080061", seriesCount: "00201206", instanceCount: "00201208",
  series: "0020000E", modality: "00080060", number: "00200011", seriesDescription: "0008103E",
  seriesInstances: "00201209",
};

async function header() {
  const [found] = await getDicomJSON(`/dicomweb/studies?StudyInstanceUID=${quoted}&includefield=00081030`);
  const box = document.getElementById("study");
  if (!found) {
    clear(box, el("p", { class: "text-danger" }, "This study is not in the archive."));
    return;
  }
  const dicomweb = `${window.location.origin}/dicomweb/studies/${study}`;
  clear(box,
    el("h3", { class: "pf-patient" }, personName(found[tags.patientName]?.Value?.[0]) || "(no name)", " ",
      el("small", {}, dicomValue(found, tags.patientId))),
    el("p", {},
      el("strong", {}, isoDate(dicomValue(found, tags.studyDate))), " · ",
      dicomValue(found, tags.description) || "(no description)", " · ",
      dicomValues(found, tags.modalities).join(", "), " · ",
      `${dicomValue(found, tags.seriesCount)} series, ${dicomValue(found, tags.instanceCount)} instances`),
    el("p", {},
      el("a", { class: "btn btn-primary btn-sm", href: viewerUrl(study) }, "Open in viewer"), " ",
      el("a", { class: "btn btn-default btn-sm", href: `/api/v1/studies/${quoted}/archive` }, "Download (zip)"), " ",
      el("input", { class: "form-control input-sm pf-url", readonly: true, value: dicomweb, "aria-label": "DICOMweb URL", onfocus: (e) => e.target.select() })));
}

async function seriesTable() {
  const series = await getDicomJSON(`/dicomweb/studies/${quoted}/series`);
  series.sort((a, b) => Number(dicomValue(a, tags.number) || 0) - Number(dicomValue(b, tags.number) || 0));
  clear(document.getElementById("series"), series.map((item) => {
    const uid = dicomValue(item, tags.series);
    return el("tr", { "data-series": uid },
      el("td", {}, el("input", { type: "checkbox", class: "pf-select", value: uid, "aria-label": "Select series" })),
      el("td", {}, thumbnail(study, uid)),
      el("td", {}, dicomValue(item, tags.number)),
      el("td", {}, dicomValue(item, tags.modality)),
      el("td", {}, dicomValue(item, tags.seriesDescription)),
      el("td", { class: "text-right" }, dicomValue(item, tags.seriesInstances)),
      el("td", {},
        el("a", { class: "btn btn-default btn-xs", href: `${viewerUrl(study)}&SeriesInstanceUIDs=${encodeURIComponent(uid)}` }, "View"), " ",
        el("a", { class: "btn btn-default btn-xs", href: `/api/v1/studies/${quoted}/series/${encodeURIComponent(uid)}/archive` }, "Zip")));
  }));
  return series.map((item) => dicomValue(item, tags.series));
}

async function runs() {
  const body = document.getElementById("runs");
  try {
    const found = await getJSON(`/api/v1/studies/${quoted}/runs`);
    clear(body, found.runs.length ? runRows(found.runs) : el("tr", {}, el("td", { colspan: 6, class: "text-muted" }, "No workflow has run on this study yet.")));
    if (isRunning(found.runs)) setTimeout(runs, REFRESH_MS);
  } catch (error) {
    clear(body, el("tr", {}, el("td", { colspan: 6, class: "text-muted" }, `Runs are unavailable: ${error.message}`)));
  }
}

async function radiomics(seriesUids) {
  const panel = document.getElementById("radiomics");
  const tables = [];
  for (const uid of seriesUids) {
    const found = await getJSON(`/api/v1/series/${encodeURIComponent(uid)}/radiomics`);
    if (!found.features.length) continue;
    tables.push(
      el("h5", {}, "Series ", el("span", { class: "pf-uid" }, uid), " ",
        el("a", { class: "btn btn-default btn-xs", href: `/api/v1/series/${encodeURIComponent(uid)}/radiomics?format=csv` }, "CSV")),
      el("table", { class: "table table-condensed table-striped pf-features" },
        el("thead", {}, el("tr", {}, ["Region", "Feature", "Value", "Unit"].map((h) => el("th", {}, h)))),
        el("tbody", {}, found.features.map((row) =>
          el("tr", {}, el("td", {}, row.region_label), el("td", {}, row.feature ?? row.code_meaning ?? ""),
            el("td", { class: "text-right" }, row.value ?? row.not_computed ?? ""), el("td", {}, row.unit ?? ""))))));
  }
  clear(panel, tables.length ? tables : el("p", { class: "text-muted" }, "No radiomics results for this study."));
}

async function load() {
  await header();
  const seriesUids = await seriesTable();
  runs();
  radiomics(seriesUids);
}

const selected = () => [...document.querySelectorAll("#series input.pf-select:checked")].map((box) => box.value);
workflowRunner(document.getElementById("runner"), selected, runs);
load();

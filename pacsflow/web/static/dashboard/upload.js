// Upload DICOM files from the browser through STOW-RS, one request per file, with progress
// and each file's result (stored, or the reason it was refused).
import { clear, el, studyUrl } from "./api.js";

const picker = document.getElementById("files");
const drop = document.getElementById("drop");
const list = document.getElementById("uploads");

function multipart(file) {
  const boundary = `pacsflow-${crypto.randomUUID()}`;
  const head = `--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  return { body: new Blob([head, file, tail]), type: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

function studyOf(response) {
  const url = response?.["00081190"]?.Value?.[0] ?? "";
  const match = /\/studies\/([0-9.]+)$/.exec(url);
  return match ? match[1] : null;
}

function send(file, progress) {
  return new Promise((resolve) => {
    const { body, type } = multipart(file);
    const request = new XMLHttpRequest();
    request.open("POST", "/dicomweb/studies");
    request.setRequestHeader("Content-Type", type);
    request.setRequestHeader("Accept", "application/dicom+json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = event.loaded / event.total;
    });
    request.addEventListener("load", () => {
      let response = null;
      try {
        response = JSON.parse(request.responseText);
      } catch {
        // an error page or empty body: the status and Warning header say enough
      }
      const warning = request.getResponseHeader("Warning");
      const reason = warning ? warning.replace(/^299 pacsflow "(.*)"$/, "$1") : response?.error ?? request.statusText;
      resolve({ ok: request.status === 200, status: request.status, reason, study: studyOf(response) });
    });
    request.addEventListener("error", () => resolve({ ok: false, status: 0, reason: "the connection failed" }));
    request.send(body);
  });
}

async function upload(files) {
  for (const file of files) {
    const progress = el("progress", { max: 1, value: 0 });
    const result = el("td", {}, "uploading…");
    list.prepend(el("tr", {}, el("td", {}, file.name), el("td", { class: "text-right" }, `${(file.size / 1024).toFixed(0)} KiB`), el("td", {}, progress), result));
    const outcome = await send(file, progress);
    progress.value = 1;
    if (outcome.ok) {
      clear(result, el("span", { class: "pf-state pf-state-success" }, "stored"), " ",
        outcome.study ? el("a", { href: studyUrl(outcome.study) }, "open study") : null);
    } else {
      clear(result, el("span", { class: "pf-state pf-state-failed" }, `refused (${outcome.status})`), " ", outcome.reason);
    }
  }
}

picker.addEventListener("change", () => {
  upload([...picker.files]);
  picker.value = "";
});
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("pf-drop-over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("pf-drop-over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("pf-drop-over");
  upload([...event.dataTransfer.files]);
});

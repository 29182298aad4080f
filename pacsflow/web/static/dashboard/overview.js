// Overview charts drawn as plain SVG: studies per modality, series arrivals per day and
// segmentation labels. No chart library: three bar charts do not need one.
import { clear, el, getJSON } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = String(text);
  return node;
}

// Horizontal bars: one row per bucket, its label left and its count right.
function horizontalBars(buckets) {
  const row = 24;
  const width = 560;
  const labelWidth = 170;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const chart = svg("svg", { width, height: Math.max(row, buckets.length * row), role: "img", class: "pf-chart" });
  buckets.forEach((bucket, i) => {
    const length = ((width - labelWidth - 60) * bucket.count) / max;
    const y = i * row;
    chart.append(
      svg("text", { x: labelWidth - 8, y: y + 16, "text-anchor": "end" }, bucket.key),
      svg("rect", { x: labelWidth, y: y + 4, width: Math.max(1, length), height: row - 8, class: "pf-bar" }),
      svg("text", { x: labelWidth + length + 6, y: y + 16 }, bucket.count),
    );
  });
  return chart;
}

// Vertical bars over days, with the first and last day written under them.
function dailyBars(buckets) {
  const width = 560;
  const height = 180;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const step = width / Math.max(buckets.length, 1);
  const chart = svg("svg", { width, height: height + 24, role: "img", class: "pf-chart" });
  buckets.forEach((bucket, i) => {
    const barHeight = ((height - 16) * bucket.count) / max;
    const bar = svg("rect", { x: i * step + 1, y: height - barHeight, width: Math.max(1, step - 2), height: barHeight, class: "pf-bar" });
    bar.append(svg("title", {}, `${bucket.key.slice(0, 10)}: ${bucket.count}`));
    chart.append(bar);
  });
  if (buckets.length) {
    chart.append(svg("text", { x: 0, y: height + 18 }, buckets[0].key.slice(0, 10)));
    chart.append(svg("text", { x: width, y: height + 18, "text-anchor": "end" }, buckets.at(-1).key.slice(0, 10)));
  }
  return chart;
}

function show(id, buckets, draw) {
  clear(document.getElementById(id), buckets.length ? draw(buckets) : el("p", { class: "text-muted" }, "Nothing yet."));
}

async function load() {
  try {
    const found = await getJSON("/api/v1/overview");
    show("modalities", found.studies_per_modality, horizontalBars);
    show("arrivals", found.series_arrivals_per_day, dailyBars);
    show("labels", found.segmentation_labels, horizontalBars);
  } catch (error) {
    clear(document.getElementById("modalities"), el("p", { class: "text-danger" }, error.message));
  }
}

load();

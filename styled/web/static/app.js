// Keeps the queue live from /events (server-sent events). Without it the page still works:
// it is whole HTML, refreshed by <noscript>'s meta refresh.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) if (child !== null && child !== undefined)
    node.append(child instanceof Node ? child : String(child));
  return node;
}

function jobLink(prefix, name) {
  return el("a", {class: "name", href: prefix + encodeURIComponent(name)}, name);
}

function figure(src, cls, caption) {
  return src ? el("figure", {}, el("img", {class: cls, src: src, alt: caption}), el("figcaption", {}, caption)) : null;
}

function running(job) {
  const percent = Math.round(job.percent);
  return el("li", {class: "job", "data-name": job.name},
    el("div", {class: "line"}, el("strong", {class: "name"}, job.name), " ", el("span", {class: "worker"}, job.worker || "")),
    el("progress", {max: "100", value: String(job.percent)}, percent + "%"),
    el("div", {class: "detail"}, percent + "% · " + job.detail + (job.resumed ? " (resumed)" : "")),
    el("div", {class: "pictures"}, figure(job.preview, "preview", "preview"), figure(job.latest, "latest", "latest checkpoint")));
}

function fill(id, count, items, empty, make) {
  const section = document.getElementById(id);
  section.querySelector(".count").textContent = count;
  const list = section.querySelector("ul.jobs");
  const rows = items.length ? items.map(make) : [el("li", {class: "empty"}, empty)];
  list.replaceChildren(...rows);
}

function show(queue) {
  const daemon = document.getElementById("daemon");
  daemon.className = "daemon " + (queue.daemon ? "up" : "down");
  daemon.textContent = queue.daemon ? "The daemon is running."
    : "The daemon is not running: jobs wait in the inbox until it starts.";
  fill("running", queue.running.length, queue.running, "Nothing is rendering.", running);
  fill("waiting", queue.waiting.length, queue.waiting, "The inbox is empty.",
    (job) => el("li", {class: "job"}, el("span", {class: "name"}, job.name), " ", el("span", {class: "worker"}, job.kind)));
  fill("done", queue.done_count, queue.done, "No results yet.",
    (job) => el("li", {class: "job"}, jobLink("/jobs/", job.name), " ", el("span", {class: "worker"}, job.worker || ""),
      " ", el("time", {}, (job.delivered || "").slice(0, 19).replace("T", " "))));
  fill("failed", queue.failed_count, queue.failed, "No failures.",
    (job) => el("li", {class: "job"}, jobLink("/failed/", job.name), " ", el("span", {class: "reason"}, job.reason || "")));
}

if (document.getElementById("queue") && window.EventSource) {
  const source = new EventSource("/events");
  source.addEventListener("queue", (event) => show(JSON.parse(event.data)));
}

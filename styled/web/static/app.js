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

function control(name, action, ...fields) {
  const csrf = document.getElementById("queue").dataset.csrf;
  return el("form", {method: "post", action: "/jobs/" + encodeURIComponent(name) + "/" + action, class: "control " + action},
    el("input", {type: "hidden", name: "csrf", value: csrf}), ...fields);
}

function cancel(job) {
  return job.cancelling ? el("span", {class: "cancelling"}, "cancelling…")
    : control(job.name, "cancel", el("button", {type: "submit"}, "Cancel"));
}

function waiting(job) {
  return el("li", {class: "job", "data-name": job.name}, jobLink("/jobs/", job.name), " ", el("span", {class: "worker"}, job.kind),
    control(job.name, "priority", el("label", {}, "priority ",
      el("input", {name: "priority", type: "number", value: String(job.priority), size: "4"})),
      el("button", {type: "submit"}, "Set")),
    cancel(job));
}

function running(job) {
  const percent = Math.round(job.percent);
  return el("li", {class: "job", "data-name": job.name},
    el("div", {class: "line"}, el("a", {class: "name", href: "/jobs/" + encodeURIComponent(job.name)}, el("strong", {}, job.name)),
      " ", el("span", {class: "worker"}, job.worker || ""),
      job.priority ? el("span", {class: "priority"}, " priority " + job.priority) : null, " ", cancel(job)),
    el("progress", {max: "100", value: String(job.percent)}, percent + "%"),
    el("div", {class: "detail"}, percent + "% · " + job.detail + (job.resumed ? " (resumed)" : "")),
    el("div", {class: "pictures"}, figure(job.preview, "preview", "preview"), figure(job.latest, "latest", "latest checkpoint")));
}

function fill(id, count, items, empty, make) {
  const section = document.getElementById(id);
  section.querySelector(".count").textContent = count;
  if (section.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;  // being typed in
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
  fill("waiting", queue.waiting.length, queue.waiting, "The inbox is empty.", waiting);
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

// The operator console's only script: the live parts of its pages, and nothing else.
//
//   <div data-refresh="/console/runs/rows" data-every="3000">  refetched and replaced
//   <div data-events="/console/runs/ID/events">                 stdout/stderr as they come
//   <form data-confirm="Close this session?">                   asks before it submits
//
// A fragment holding [data-done] stops its refreshing; an answer 401 (signed out, a
// token revoked) reloads the page, which then shows the login.
"use strict";

(function () {
  const FETCH_HEADERS = { "X-Console-Fetch": "1" };

  function refreshing(region) {
    const every = Number(region.dataset.every || 3000);
    async function tick() {
      if (!document.hidden && !region.contains(document.activeElement)) {
        try {
          const answer = await fetch(region.dataset.refresh, {
            headers: FETCH_HEADERS, credentials: "same-origin", cache: "no-store",
          });
          if (answer.status === 401) {
            window.location.reload();
            return;
          }
          if (answer.ok) {
            const html = await answer.text();
            if (html !== region.dataset.shown) {
              region.innerHTML = html;
              region.dataset.shown = html;
            }
          }
        } catch (error) {
          // The daemon is restarting or the network blinked: the next tick tries again.
        }
      }
      if (!region.querySelector("[data-done]")) {
        window.setTimeout(tick, every);
      }
    }
    if (!region.querySelector("[data-done]")) {
      window.setTimeout(tick, every);
    }
  }

  function streaming(region) {
    const outputs = {
      stdout: document.getElementById("stdout"),
      stderr: document.getElementById("stderr"),
    };
    const status = document.getElementById("run-status");
    const source = new EventSource(region.dataset.events);
    // Every (re)connection replays the run's output from its start.
    source.addEventListener("open", function () {
      outputs.stdout.textContent = "";
      outputs.stderr.textContent = "";
    });
    ["stdout", "stderr"].forEach(function (name) {
      source.addEventListener(name, function (event) {
        outputs[name].append(JSON.parse(event.data).data);
      });
    });
    source.addEventListener("status", function (event) {
      const value = String(JSON.parse(event.data).status);
      status.textContent = value;
      status.className = "status s-" + value;
    });
    ["result", "end", "logout"].forEach(function (name) {
      source.addEventListener(name, function () {
        source.close();
        // The record is final a moment after the last event.
        window.setTimeout(function () { window.location.reload(); }, name === "end" ? 500 : 200);
      });
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(function () { window.location.reload(); }, 2000);
      }
    });
  }

  // Delegated, so that forms a refresh brings in ask too.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm
        && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refreshing);
    document.querySelectorAll("[data-events]").forEach(streaming);
  });
})();

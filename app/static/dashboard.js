// Live dashboard: one Chart.js line chart per tag (one line per device), anomalies as red points,
// refreshed every 2 s from GET /sensors/stats and GET /data. The read token comes from the page URL
// (?token=) and is only ever sent in the Authorization header; it is never logged or shown.
"use strict";

(() => {
  const POLL_MS = 2000;
  const POINTS_PER_TAG = 100;
  const ANOMALY_COLOR = "#dc2626";
  const DEVICE_COLORS = ["#2563eb", "#0d9488", "#7c3aed", "#ea580c", "#0891b2", "#65a30d", "#db2777", "#475569"];

  const token = new URLSearchParams(window.location.search).get("token");
  const charts = new Map(); // tag -> Chart
  const byId = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, retryAfterSeconds) {
      super(`HTTP ${status}`);
      this.status = status;
      this.retryAfterSeconds = retryAfterSeconds;
    }
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      throw new ApiError(response.status, Number(response.headers.get("Retry-After")) || 0);
    }
    return response.json();
  }

  function showStatus(message, kind = "info") {
    const status = byId("status");
    status.textContent = message;
    status.className = `status ${kind}`;
    status.hidden = !message;
  }

  function colorOf(deviceId) {
    let hash = 0;
    for (const character of deviceId) hash = (hash * 31 + character.charCodeAt(0)) >>> 0;
    return DEVICE_COLORS[hash % DEVICE_COLORS.length];
  }

  function chartFor(tag) {
    if (!charts.has(tag)) {
      const section = document.createElement("section");
      section.className = "chart";
      const title = document.createElement("h2");
      title.textContent = tag;
      const plot = document.createElement("div");
      plot.className = "plot";
      const canvas = document.createElement("canvas");
      plot.append(canvas);
      section.append(title, plot);
      byId("charts").append(section);
      charts.set(tag, new Chart(canvas, {
        type: "line",
        data: { labels: [], datasets: [] },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "nearest", intersect: false },
          plugins: { legend: { labels: { boxWidth: 12 } } },
          scales: { x: { ticks: { maxTicksLimit: 6, maxRotation: 0 } } },
        },
      }));
    }
    return charts.get(tag);
  }

  // Rows arrive newest first and may mix devices: each row gets its own x position (oldest left), each
  // device a line through its own positions (spanGaps), and anomalies an extra red point series on top.
  function draw(tag, rows) {
    const ordered = [...rows].reverse();
    const devices = [...new Set(ordered.map((row) => row.device_id))].sort();
    const datasets = devices.map((deviceId) => ({
      label: deviceId,
      data: ordered.map((row) => (row.device_id === deviceId ? row.value : null)),
      borderColor: colorOf(deviceId),
      backgroundColor: colorOf(deviceId),
      borderWidth: 1.5,
      pointRadius: 0,
      spanGaps: true,
    }));
    datasets.push({
      label: "anomaly",
      data: ordered.map((row) => (row.is_anomaly ? row.value : null)),
      showLine: false,
      pointRadius: 4,
      pointHoverRadius: 6,
      borderColor: ANOMALY_COLOR,
      backgroundColor: ANOMALY_COLOR,
    });
    const chart = chartFor(tag);
    chart.data.labels = ordered.map((row) => new Date(row.timestamp).toLocaleTimeString());
    chart.data.datasets = datasets;
    chart.update();
  }

  async function refresh() {
    const stats = await api("/sensors/stats");
    const total = stats.reduce((sum, tag) => sum + tag.count, 0);
    const anomalies = stats.reduce((sum, tag) => sum + tag.anomalies, 0);
    byId("total").textContent = total.toLocaleString();
    byId("anomalies").textContent = anomalies.toLocaleString();
    const tags = stats.map((tag) => tag.tag).sort();
    const series = await Promise.all(
      tags.map((tag) => api(`/data?tag=${encodeURIComponent(tag)}&limit=${POINTS_PER_TAG}`)),
    );
    tags.forEach((tag, index) => draw(tag, series[index]));
    byId("updated").textContent = new Date().toLocaleTimeString();
    showStatus(tags.length ? "" : "No readings yet: start the simulator (python -m loadtests.simulator).");
  }

  // Returns the delay before the next poll, or null when polling cannot succeed without a new token.
  function explain(error) {
    if (!(error instanceof ApiError)) {
      showStatus("The API is unreachable (network error). Retrying every 2 s…", "error");
      return POLL_MS;
    }
    switch (error.status) {
      case 401:
        showStatus("Your access token has expired or is invalid. Open a fresh dashboard link " +
          "(`make up` prints one) to continue.", "error");
        return null;
      case 403:
        showStatus("This token lacks the `read` scope; use a dashboard token.", "error");
        return null;
      case 429:
        showStatus("Rate limited by the API; slowing down.", "warn");
        return Math.max(POLL_MS, error.retryAfterSeconds * 1000);
      default:
        showStatus(`The API answered ${error.status}. Retrying every 2 s…`, "warn");
        return POLL_MS;
    }
  }

  async function poll() {
    let delay = POLL_MS;
    // A hidden tab does not spend the client's rate limit.
    if (!document.hidden) {
      try {
        await refresh();
      } catch (error) {
        delay = explain(error);
      }
    }
    if (delay !== null) window.setTimeout(poll, delay);
  }

  if (typeof window.Chart === "undefined") {
    showStatus("Chart.js is missing from /static/vendor/: run `make vendor` (or `make up`) and reload.", "error");
  } else if (!token) {
    showStatus("No token in the page URL: open the link `make up` prints (…/dashboard?token=…).", "error");
  } else {
    poll();
  }
})();

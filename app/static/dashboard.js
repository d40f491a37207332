// Live dashboard: one Chart.js chart per tag on a real time axis (one line per device, anomalies as red
// points). The server pushes everything over one Server-Sent Events stream per viewer
// (GET /dashboard/stream): a snapshot of the chosen range, then new readings and the counters every
// second. The session cookie (HttpOnly) authenticates the stream; no token is ever in a URL or in this
// script. After a server restart the stream reconnects by itself.
"use strict";

(() => {
  const ANOMALY_COLOR = "#dc2626";
  const DEVICE_COLORS = ["#2563eb", "#0d9488", "#7c3aed", "#ea580c", "#0891b2", "#65a30d", "#db2777", "#475569"];
  const RANGE_MS = { "5m": 5 * 60 * 1000, "1h": 60 * 60 * 1000, "24h": 24 * 60 * 60 * 1000 };
  const RETRY_MS = 2000;

  const byId = (id) => document.getElementById(id);
  const charts = new Map(); // tag -> Chart
  const readings = new Map(); // tag -> Map(id -> {x, y, device, anomaly})
  const devices = new Set();
  const hiddenDevices = new Set(); // unticked in the picker; new devices show by default
  let range = "5m";
  let source = null;
  let retryTimer = null;
  let drawPending = false;

  function showStatus(message, kind = "info") {
    const status = byId("status");
    status.textContent = message;
    status.className = `status ${kind}`;
    status.hidden = !message;
  }

  function setLive(state, text) {
    const live = byId("live");
    live.dataset.state = state;
    live.textContent = text;
  }

  // Colours by the device's place among the devices seen (sorted): distinct for up to 8 devices.
  function colorOf(deviceId) {
    const index = [...devices].sort().indexOf(deviceId);
    return DEVICE_COLORS[Math.max(0, index) % DEVICE_COLORS.length];
  }

  function chartFor(tag) {
    if (!charts.has(tag)) {
      const section = document.createElement("section");
      section.className = "chart";
      section.dataset.tag = tag;
      const title = document.createElement("h2");
      title.textContent = tag;
      const plot = document.createElement("div");
      plot.className = "plot";
      const canvas = document.createElement("canvas");
      plot.append(canvas);
      section.append(title, plot);
      // Keep the charts in tag order whatever order tags first appear in.
      const after = [...byId("charts").children].find((other) => other.dataset.tag > tag);
      byId("charts").insertBefore(section, after || null);
      charts.set(tag, new Chart(canvas, {
        type: "line",
        data: { datasets: [] },
        options: {
          animation: false,
          maintainAspectRatio: false,
          parsing: false,
          normalized: true,
          interaction: { mode: "nearest", intersect: false },
          plugins: { legend: { labels: { boxWidth: 12 } } },
          scales: {
            x: {
              type: "time",
              time: { tooltipFormat: "yyyy-MM-dd HH:mm:ss", displayFormats: { second: "HH:mm:ss", minute: "HH:mm", hour: "HH:mm" } },
              ticks: { maxTicksLimit: 7, maxRotation: 0 },
            },
          },
        },
      }));
    }
    return charts.get(tag);
  }

  function add(rows) {
    for (const row of rows) {
      if (!readings.has(row.tag)) readings.set(row.tag, new Map());
      readings.get(row.tag).set(row.id, {
        x: Date.parse(row.timestamp), y: row.value, device: row.device_id, anomaly: row.is_anomaly,
      });
      if (!devices.has(row.device_id)) {
        devices.add(row.device_id);
        renderDevicePicker();
      }
    }
    scheduleDraw();
  }

  function renderDevicePicker() {
    const box = byId("devices");
    box.querySelectorAll("label, .hint").forEach((node) => node.remove());
    for (const deviceId of [...devices].sort()) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = deviceId;
      input.checked = !hiddenDevices.has(deviceId);
      input.addEventListener("change", () => {
        if (input.checked) hiddenDevices.delete(deviceId); else hiddenDevices.add(deviceId);
        scheduleDraw();
      });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = colorOf(deviceId);
      label.append(input, swatch, document.createTextNode(deviceId));
      box.append(label);
    }
  }

  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    window.requestAnimationFrame(() => {
      drawPending = false;
      drawAll();
    });
  }

  function drawAll() {
    const now = Date.now();
    const from = now - RANGE_MS[range];
    for (const [tag, points] of readings) {
      for (const [id, point] of points) if (point.x < from) points.delete(id);
      const shown = [...points.values()].filter((point) => !hiddenDevices.has(point.device)).sort((a, b) => a.x - b.x);
      const datasets = [...new Set(shown.map((point) => point.device))].sort().map((deviceId) => ({
        label: deviceId,
        data: shown.filter((point) => point.device === deviceId),
        borderColor: colorOf(deviceId),
        backgroundColor: colorOf(deviceId),
        borderWidth: 1.5,
        pointRadius: 0,
      }));
      datasets.push({
        label: "anomaly",
        data: shown.filter((point) => point.anomaly),
        showLine: false,
        pointRadius: 5,
        pointHoverRadius: 7,
        borderColor: ANOMALY_COLOR,
        backgroundColor: ANOMALY_COLOR,
        order: -1, // drawn on top of the lines
      });
      const chart = chartFor(tag);
      chart.options.scales.x.min = from;
      chart.options.scales.x.max = now;
      chart.data.datasets = datasets;
      chart.update("none");
    }
    if (!readings.size) showStatus("No readings in this range yet: start the simulator (python -m loadtests.simulator).");
  }

  function showCounters(counters) {
    byId("total").textContent = counters.total.toLocaleString();
    byId("total").dataset.value = counters.total;
    byId("anomalies").textContent = counters.anomalies.toLocaleString();
    byId("anomalies").dataset.value = counters.anomalies;
    byId("updated").textContent = new Date().toLocaleTimeString();
  }

  function connect() {
    window.clearTimeout(retryTimer);
    if (source) source.close();
    setLive("connecting", "connecting");
    source = new EventSource(`/dashboard/stream?range=${encodeURIComponent(range)}`);
    source.addEventListener("open", () => {
      setLive("live", "live");
      showStatus("");
    });
    source.addEventListener("snapshot", (event) => {
      const snapshot = JSON.parse(event.data);
      readings.clear();
      add(snapshot.readings);
      showCounters(snapshot.counters);
      scheduleDraw();
    });
    source.addEventListener("readings", (event) => add(JSON.parse(event.data)));
    source.addEventListener("counters", (event) => {
      showCounters(JSON.parse(event.data));
      scheduleDraw(); // the time window moves on even when nothing new arrived
    });
    source.addEventListener("problem", (event) => showStatus(`${JSON.parse(event.data).message}; still trying…`, "warn"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CONNECTING) {
        setLive("reconnecting", "reconnecting");
        showStatus("Connection to the server lost; reconnecting…", "warn");
        return;
      }
      // The browser gave up (an HTTP error answered the stream): find out why before trying again.
      setLive("reconnecting", "reconnecting");
      explainAndRetry();
    });
  }

  async function explainAndRetry() {
    let delay = RETRY_MS;
    try {
      const response = await fetch("/dashboard/session", { cache: "no-store", credentials: "same-origin" });
      if (response.status === 401) {
        window.location.assign("/dashboard/sign-in");
        return;
      }
      if (response.status === 429) {
        delay = Math.max(RETRY_MS, (Number(response.headers.get("Retry-After")) || 5) * 1000);
        showStatus("Too many dashboard tabs or requests for this sign-in; retrying shortly…", "warn");
      } else {
        showStatus("The server is restarting or unreachable; reconnecting…", "warn");
      }
    } catch {
      showStatus("The server is unreachable; reconnecting…", "warn");
    }
    retryTimer = window.setTimeout(connect, delay);
  }

  function start() {
    byId("ranges").addEventListener("change", (event) => {
      range = event.target.value;
      connect();
    });
    connect();
  }

  function hasTimeAxis() {
    try {
      new window.Chart._adapters._date().format(0, "yyyy"); // throws without the date adapter
      return true;
    } catch {
      return false;
    }
  }

  if (typeof window.Chart === "undefined" || !hasTimeAxis()) {
    showStatus("Chart.js or its date adapter is missing from /static/vendor/: run `make vendor` (or `make up`) and reload.", "error");
  } else {
    start();
  }
})();

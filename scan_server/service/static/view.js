// The live view of the scan server: no build step, no dependencies.
// The server token and a session's credential come from the URL fragment (#token=…&session=…, never
// sent to the server) or a form, and are kept in this tab's sessionStorage; every request sends them
// as "Authorization: Bearer" and "X-Session-Token".
"use strict";

const LiveView = (() => {
  const KEY = "scan-server-token";
  const $ = (id) => document.getElementById(id);

  const sessionId = location.pathname.startsWith("/sessions/") ? location.pathname.split("/")[2] : null;
  const SESSION_KEY = "scan-session-token-" + sessionId;

  function token() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.has("token") || fragment.has("session")) {
      if (fragment.has("token")) sessionStorage.setItem(KEY, fragment.get("token"));
      if (fragment.has("session") && sessionId) sessionStorage.setItem(SESSION_KEY, fragment.get("session"));
      history.replaceState(null, "", location.pathname);   // the secrets leave the address bar
    }
    return sessionStorage.getItem(KEY);
  }

  function askForToken(then) {
    const form = $("token-form");
    form.style.display = "block";
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("token-input").value);
      if (sessionId && $("session-input")) sessionStorage.setItem(SESSION_KEY, $("session-input").value);
      form.style.display = "none";
      then();
    };
  }

  function authorised(url, options = {}) {
    const headers = Object.assign({}, options.headers, {Authorization: "Bearer " + (token() || "")});
    const credential = sessionId && sessionStorage.getItem(SESSION_KEY);
    if (credential) headers["X-Session-Token"] = credential;
    return fetch(url, Object.assign({}, options, {headers, cache: "no-store"}));
  }

  async function failed(response) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
    $("error").textContent = message;
    if (response.status === 401) askForToken(() => location.reload());
  }

  // ---- one session ------------------------------------------------------------------------------
  const state = {view: null, image: null, imageVersion: -1, imageLoading: false};
  window.viewState = state;    // for tests and the curious

  function colour(step, steps) {
    const hue = 240 - 240 * (steps > 1 ? step / (steps - 1) : 0);
    return `hsl(${hue}, 90%, 55%)`;
  }

  function draw() {
    const view = state.view;
    const canvas = $("field");
    const context = canvas.getContext("2d");
    context.fillStyle = "#111";
    context.fillRect(0, 0, canvas.width, canvas.height);
    if (!view) return;
    const [height, width] = view.field_of_view_angstrom;
    const scale = Math.min(canvas.width / width, canvas.height / height);
    const offsetX = (canvas.width - width * scale) / 2, offsetY = (canvas.height - height * scale) / 2;
    if (state.image && $("show-reconstruction").checked) {
      context.drawImage(state.image, offsetX, offsetY, width * scale, height * scale);
    }
    context.strokeStyle = "#888";
    context.strokeRect(offsetX, offsetY, width * scale, height * scale);
    const steps = view.steps.length;
    view.acquired_angstrom.forEach(([y, x], i) => {
      context.fillStyle = colour(view.acquired_step[i], steps);
      context.beginPath();
      context.arc(offsetX + x * scale, offsetY + y * scale, 3, 0, 2 * Math.PI);
      context.fill();
    });
    context.strokeStyle = "#f80";
    context.lineWidth = 1.5;
    view.next_positions_angstrom.forEach(([y, x]) => {
      context.beginPath();
      context.arc(offsetX + x * scale, offsetY + y * scale, 5, 0, 2 * Math.PI);
      context.stroke();
    });
  }

  function showNumbers(view) {
    $("status").textContent = view.status;
    $("strategy").textContent = view.strategy;
    $("acquired").textContent = view.positions_acquired;
    $("planned").textContent = view.positions_planned;
    $("steps").textContent = view.steps.length;
    $("fallbacks").textContent = view.fallbacks;
    $("dose").textContent = view.dose_electrons_per_angstrom2 === null ? "unknown" :
      view.dose_electrons_per_angstrom2.toFixed(1) + " e⁻/Å²" + (view.dose_source ? " (" + view.dose_source + ")" : "");
    const times = view.steps.map((s) => s.total_ms).filter((t) => t !== null).sort((a, b) => a - b);
    $("latency").textContent = times.length ?
      times[Math.floor(times.length / 2)].toFixed(1) + " / " + times[times.length - 1].toFixed(1) + " ms" : "";
    const table = $("step-table");
    while (table.rows.length > 1) table.deleteRow(1);
    view.steps.slice(-12).forEach((s) => {
      const row = table.insertRow();
      row.insertCell().textContent = s.seq;
      row.insertCell().textContent = s.positions;
      row.insertCell().textContent = s.total_ms === null ? "" : s.total_ms.toFixed(1);
      const cell = row.insertCell();
      if (s.fallback) { cell.textContent = "fallback"; cell.className = "fallback"; }
    });
  }

  async function loadImage(id) {
    // one reconstruction at a time, and only when something new was acquired
    const view = state.view;
    if (!$("show-reconstruction").checked || state.imageLoading || !view || view.positions_acquired === 0 ||
        state.imageVersion === view.version) return;
    state.imageLoading = true;
    const version = view.version;
    try {
      const response = await authorised(`/sessions/${id}/reconstruction?format=png`);
      if (response.ok) {
        const image = new Image();
        image.src = URL.createObjectURL(await response.blob());
        await image.decode();
        state.image = image;
        state.imageVersion = version;
        draw();
      }
    } finally {
      state.imageLoading = false;
    }
    if (state.view && state.view.version !== version) loadImage(id);
  }

  function apply(id, view) {
    state.view = view;
    showNumbers(view);
    draw();
    loadImage(id);
  }

  async function follow(id) {
    // server-sent events read through fetch (EventSource cannot send the Authorization header)
    const response = await authorised(`/sessions/${id}/events`);
    if (!response.ok) return failed(response);
    $("error").textContent = "";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) apply(id, JSON.parse(data));
      }
    }
    if (state.view && state.view.status === "open") setTimeout(() => follow(id), 1000);   // reconnect
  }

  function session() {
    const id = sessionId;
    $("session-id").textContent = id;
    $("show-reconstruction").onchange = () => { draw(); loadImage(id); };
    draw();
    if (!token() && !sessionStorage.getItem(SESSION_KEY)) return askForToken(() => follow(id));
    follow(id).catch((error) => { $("error").textContent = String(error); });
  }

  // ---- the index ----------------------------------------------------------------------------------
  async function index() {
    if (!token()) return askForToken(index);
    const response = await authorised("/sessions");
    if (!response.ok) return failed(response);
    const table = $("sessions");
    for (const s of await response.json()) {
      const row = table.insertRow();
      const link = document.createElement("a");
      link.href = `/sessions/${s.session_id}/view`;
      link.textContent = s.session_id;
      row.insertCell().appendChild(link);
      row.insertCell().textContent = s.status;
      row.insertCell().textContent = s.strategy;
      row.insertCell().textContent = `${s.positions_acquired} / ${s.positions_planned}`;
      row.insertCell().textContent = s.fallbacks;
      row.insertCell().textContent = new Date(s.created_at * 1000).toLocaleString();
    }
  }

  return {session, index};
})();

/* emolens web page: webcam -> WebSocket -> boxes, bars, timeline and a voice assistant. Plain JS, no deps.
 *
 * Page options (URL query): lang=en|vi, hold=ms an expression must hold before the assistant answers
 * (default 1500), cooldown=ms between two replies (default 8000), minconf=0..1 confidence needed
 * (default 0.45), fps=max frames sent per second (default 12), side=max side of a sent frame in px
 * (default 480), autostart=1 starts the camera at once, mute=1 starts muted.
 */
(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const num = (name, dflt) => {
    const v = parseFloat(params.get(name));
    return Number.isFinite(v) ? v : dflt;
  };
  const CFG = {
    holdMs: num("hold", 1500),
    cooldownMs: num("cooldown", 8000),
    minConf: num("minconf", 0.45),
    maxFps: Math.max(1, num("fps", 12)),
    side: Math.max(96, num("side", 480)),
    replyTimeoutMs: 4000,
  };

  const COLORS = {
    angry: "#e5484d", disgust: "#6e8f0b", fear: "#8e4ec6", happy: "#f5b700", sad: "#3e63dd",
    surprise: "#f76b15", neutral: "#8b8d98", contempt: "#12a594",
  };
  const colorOf = (label) => COLORS[label] || "#2bb3c0";

  // ---- texts ----
  const TEXT = {
    en: {
      offline: "offline", online: "live", connecting: "connecting…", language: "Language",
      live: "Live camera", image: "Image", start: "Start camera", stop: "Stop", mirror: "Mirror",
      camera_hint: "Your camera stays on this device; frames go only to this server.",
      drop: "Choose or drop a JPEG, PNG or WebP image", probabilities: "Expression", assistant: "Assistant",
      mute: "Mute", assistant_idle: "Hold an expression for a moment and I will answer.",
      timeline: "Session timeline", clear: "Clear", footer: "Runs offline. Nothing is stored.",
      no_face: "no face", faces: (n) => (n === 1 ? "1 face" : n + " faces"),
      camera_denied: "Camera not available: ", uploading: "Recognising…", no_voice: "",
      muted_note: "Muted: replies are shown, not spoken.",
      names: { angry: "angry", disgust: "disgust", fear: "fear", happy: "happy", sad: "sad",
               surprise: "surprise", neutral: "neutral", contempt: "contempt" },
      replies: {
        happy: ["You look happy! That smile is contagious.", "Great to see you smiling.",
                "Someone is in a good mood today!"],
        sad: ["You seem a little down. Take a deep breath, I'm here with you.",
              "Feeling sad is okay. Maybe a short break would help?"],
        angry: ["You look upset. Let's slow down and breathe for a moment.",
                "Something bothering you? Counting to five can help."],
        surprise: ["Oh! Something surprised you?", "Wow, what a surprise!"],
        fear: ["You look worried. Everything is okay, you're safe here.",
               "Easy now. Take a slow breath with me."],
        disgust: ["Hmm, something you don't like?", "That face says: no, thank you!"],
        neutral: ["You look calm and focused.", "Steady as ever. How is your day going?"],
        contempt: ["That look says a lot! Not impressed?", "A sceptical face, I see."],
      },
    },
    vi: {
      offline: "ngoại tuyến", online: "trực tiếp", connecting: "đang kết nối…", language: "Ngôn ngữ",
      live: "Camera trực tiếp", image: "Ảnh", start: "Bật camera", stop: "Dừng", mirror: "Lật gương",
      camera_hint: "Camera của bạn chỉ ở trên thiết bị này; khung hình chỉ gửi tới máy chủ này.",
      drop: "Chọn hoặc thả một ảnh JPEG, PNG hay WebP", probabilities: "Biểu cảm", assistant: "Trợ lý",
      mute: "Tắt tiếng", assistant_idle: "Hãy giữ một biểu cảm trong giây lát, mình sẽ trả lời.",
      timeline: "Dòng thời gian của phiên", clear: "Xoá", footer: "Chạy ngoại tuyến. Không lưu gì cả.",
      no_face: "không thấy khuôn mặt", faces: (n) => n + " khuôn mặt",
      camera_denied: "Không dùng được camera: ", uploading: "Đang nhận diện…",
      no_voice: "Thiết bị này chưa có giọng đọc tiếng Việt; câu trả lời vẫn hiện ở đây.",
      muted_note: "Đã tắt tiếng: câu trả lời chỉ hiện chữ.",
      names: { angry: "tức giận", disgust: "ghê tởm", fear: "sợ hãi", happy: "vui vẻ", sad: "buồn",
               surprise: "ngạc nhiên", neutral: "bình thường", contempt: "khinh thường" },
      replies: {
        happy: ["Bạn trông thật vui! Nụ cười của bạn dễ lây quá.", "Thật vui khi thấy bạn cười.",
                "Hôm nay có người đang rất vui nhé!"],
        sad: ["Bạn có vẻ hơi buồn. Hít một hơi thật sâu nhé, mình ở đây với bạn.",
              "Buồn một chút cũng không sao. Nghỉ ngơi một lát nhé?"],
        angry: ["Bạn trông có vẻ bực bội. Mình cùng chậm lại và hít thở nhé.",
                "Có chuyện gì làm bạn khó chịu à? Thử đếm đến năm xem sao."],
        surprise: ["Ồ! Có điều gì làm bạn bất ngờ à?", "Chà, thật bất ngờ!"],
        fear: ["Bạn trông có vẻ lo lắng. Mọi thứ đều ổn, bạn an toàn mà.",
               "Bình tĩnh nào. Cùng hít thở chậm với mình nhé."],
        disgust: ["Hừm, có gì đó bạn không thích à?", "Gương mặt đó như muốn nói: thôi, cảm ơn!"],
        neutral: ["Bạn trông thật bình tĩnh và tập trung.", "Vẫn điềm tĩnh như mọi khi. Hôm nay của bạn thế nào?"],
        contempt: ["Ánh mắt đó nói lên nhiều điều đấy! Không ấn tượng lắm à?", "Một gương mặt đầy hoài nghi nhỉ."],
      },
    },
  };
  const LANG_TAG = { en: "en-US", vi: "vi-VN" };

  const $ = (id) => document.getElementById(id);
  const els = {
    conn: $("conn"), fps: $("fps"), model: $("model-name"), lang: $("lang"),
    tabLive: $("tab-live"), tabImage: $("tab-image"), panelLive: $("panel-live"), panelImage: $("panel-image"),
    viewport: $("viewport"), video: $("video"), overlay: $("overlay"), empty: $("live-empty"),
    start: $("start"), stop: $("stop"), mirror: $("mirror"), liveMsg: $("live-msg"),
    drop: $("drop"), file: $("file"), imageView: $("image-view"), still: $("still"),
    stillOverlay: $("still-overlay"), imageMsg: $("image-msg"),
    topLabel: $("top-label"), topConf: $("top-conf"), bars: $("bars"),
    mute: $("mute"), say: $("say"), voiceNote: $("voice-note"),
    timeline: $("timeline"), legend: $("legend"), clear: $("clear"),
  };

  // state that tests (and curious users, from the console) can read
  const state = {
    lang: "en", classes: [], model: null, connected: false,
    sent: 0, answered: 0, dropped: 0, facesDrawn: 0, lastResult: null, lastLatencyMs: null,
    spoken: [], timeline: [],
  };
  window.emolens = { state, config: CFG, texts: TEXT };

  let lang = (params.get("lang") || localStorage.getItem("emolens.lang") || "en").slice(0, 2);
  if (!TEXT[lang]) lang = "en";
  const t = (key) => TEXT[lang][key];
  const nameOf = (label) => (TEXT[lang].names[label] || label);

  function applyLanguage() {
    state.lang = lang;
    els.lang.value = lang;
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      const value = TEXT[lang][el.dataset.i18n];
      if (typeof value === "string" && !(el.id === "say" && el.dataset.spoken)) el.textContent = value;
    });
    renderBars(lastShownFace);
    renderLegend();
    updateVoiceNote();
    setConn(connKind);
  }
  els.lang.addEventListener("change", () => {
    lang = els.lang.value;
    localStorage.setItem("emolens.lang", lang);
    applyLanguage();
  });

  // ---- model info ----
  function setModel(info) {
    if (!info) return;
    state.model = info;
    if (Array.isArray(info.classes) && info.classes.length) state.classes = info.classes.slice();
    els.model.textContent = info.name + (info.version && info.version !== "0" ? " v" + info.version : "");
    els.model.title = [info.name, info.backend, info.detector].filter(Boolean).join(" · ");
    buildBars();
    renderLegend();
  }
  fetch("/v1/models").then((r) => r.json()).then((d) => setModel(d.loaded)).catch(() => {});

  // ---- probability bars ----
  let barRows = {};
  let lastShownFace = null;
  function buildBars() {
    els.bars.textContent = "";
    barRows = {};
    for (const c of state.classes) {
      const row = document.createElement("div");
      row.className = "row";
      row.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
      row.querySelector(".fill").style.background = colorOf(c);
      els.bars.appendChild(row);
      barRows[c] = row;
    }
    renderBars(lastShownFace);
  }
  function renderBars(face) {
    lastShownFace = face;
    for (const c of state.classes) {
      const row = barRows[c];
      if (!row) continue;
      const p = face ? (face.probabilities[c] || 0) : 0;
      row.querySelector(".name").textContent = nameOf(c);
      row.querySelector(".fill").style.width = (p * 100).toFixed(1) + "%";
      row.querySelector(".pct").textContent = face ? Math.round(p * 100) + "%" : "";
    }
    if (face) {
      els.topLabel.textContent = nameOf(face.label);
      els.topLabel.style.color = colorOf(face.label);
      els.topConf.textContent = Math.round(face.confidence * 100) + "%";
    } else {
      els.topLabel.textContent = "–";
      els.topLabel.style.color = "";
      els.topConf.textContent = "";
    }
  }

  // ---- drawing boxes ----
  function fitCanvas(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return dpr;
  }
  // draws faces of a result whose image is srcW x srcH, shown with object-fit: contain in the canvas box
  function drawFaces(canvas, faces, srcW, srcH, mirrored) {
    const dpr = fitCanvas(canvas);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!faces || !srcW || !srcH) return 0;
    const scale = Math.min(canvas.width / srcW, canvas.height / srcH);
    const ox = (canvas.width - srcW * scale) / 2;
    const oy = (canvas.height - srcH * scale) / 2;
    const fontPx = Math.round(Math.max(12, Math.min(20, canvas.width / 40 / dpr)) * dpr);
    ctx.font = "600 " + fontPx + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    for (const f of faces) {
      let [x1, y1, x2, y2] = f.box;
      if (mirrored) { const m1 = srcW - x2, m2 = srcW - x1; x1 = m1; x2 = m2; }
      const x = ox + x1 * scale, y = oy + y1 * scale, w = (x2 - x1) * scale, h = (y2 - y1) * scale;
      const color = colorOf(f.label);
      ctx.lineWidth = Math.max(2, 3 * dpr);
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
      const text = nameOf(f.label) + " " + Math.round(f.confidence * 100) + "%" +
        (f.track_id !== null && f.track_id !== undefined ? "  #" + f.track_id : "");
      const tw = ctx.measureText(text).width + 10 * dpr;
      const th = fontPx + 8 * dpr;
      const ty = y - th >= 0 ? y - th : y + h;
      ctx.fillStyle = color;
      ctx.fillRect(x - ctx.lineWidth / 2, ty, tw, th);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x + 5 * dpr - ctx.lineWidth / 2, ty + 4 * dpr);
    }
    return faces.length;
  }
  function mainFace(faces) {
    if (!faces || !faces.length) return null;
    // the followed face: the one kept from last time if still there, else the largest
    if (mainFace.track !== undefined && mainFace.track !== null) {
      const same = faces.find((f) => f.track_id === mainFace.track);
      if (same) return same;
    }
    let best = faces[0], area = -1;
    for (const f of faces) {
      const a = (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
      if (a > area) { area = a; best = f; }
    }
    mainFace.track = best.track_id;
    return best;
  }

  // ---- tabs ----
  function showTab(live) {
    els.tabLive.setAttribute("aria-selected", String(live));
    els.tabImage.setAttribute("aria-selected", String(!live));
    els.panelLive.hidden = !live;
    els.panelImage.hidden = live;
  }
  els.tabLive.addEventListener("click", () => showTab(true));
  els.tabImage.addEventListener("click", () => showTab(false));

  // ---- live camera + WebSocket ----
  let connKind = "offline";
  let stream = null, ws = null, inFlight = 0, sentAt = 0, lastSend = 0, reconnectDelay = 500, running = false;
  const grab = document.createElement("canvas");
  const answerTimes = [];

  function setConn(kind) {
    connKind = kind;
    state.connected = kind === "online";
    els.conn.textContent = t(kind);
    els.conn.className = "pill " + (kind === "online" ? "on" : "off");
  }
  function setMsg(el, text, error) { el.textContent = text || ""; el.classList.toggle("error", !!error); }

  async function startCamera() {
    if (running) return;
    setMsg(els.liveMsg, "");
    try {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("getUserMedia unsupported (open the page over https or localhost)");
      stream = await navigator.mediaDevices.getUserMedia({
        audio: false, video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
      });
    } catch (e) {
      setMsg(els.liveMsg, t("camera_denied") + (e && e.message ? e.message : e), true);
      return;
    }
    running = true;
    els.video.srcObject = stream;
    await els.video.play().catch(() => {});
    els.empty.hidden = true;
    els.start.disabled = true;
    els.stop.disabled = false;
    connect();
    requestAnimationFrame(pump);
  }
  function stopCamera() {
    running = false;
    if (stream) stream.getTracks().forEach((tr) => tr.stop());
    stream = null;
    els.video.srcObject = null;
    els.empty.hidden = false;
    els.start.disabled = false;
    els.stop.disabled = true;
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    setConn("offline");
    drawFaces(els.overlay, [], 0, 0, false);
  }
  els.start.addEventListener("click", startCamera);
  els.stop.addEventListener("click", stopCamera);
  els.mirror.addEventListener("change", () => els.viewport.classList.toggle("mirror", els.mirror.checked));
  els.viewport.classList.toggle("mirror", els.mirror.checked);

  function connect() {
    if (!running) return;
    setConn("connecting");
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream";
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    inFlight = 0;
    ws.onopen = () => { reconnectDelay = 500; setConn("online"); };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "hello") { setModel(msg.model); return; }
      if (msg.type === "result") { inFlight = 0; onLiveResult(msg); return; }
      if (msg.type === "error") { inFlight = 0; setMsg(els.liveMsg, msg.message, true); }
    };
    ws.onclose = () => {
      setConn("offline");
      ws = null;
      if (running) { setTimeout(connect, reconnectDelay); reconnectDelay = Math.min(8000, reconnectDelay * 2); }
    };
  }

  // sends the next frame when the last one is answered (or timed out), at most maxFps a second
  function pump(now) {
    if (!running) return;
    requestAnimationFrame(pump);
    const v = els.video;
    if (!ws || ws.readyState !== 1 || document.hidden || !v.videoWidth) return;
    if (inFlight && now - sentAt < CFG.replyTimeoutMs) return;
    if (now - lastSend < 1000 / CFG.maxFps) return;
    const s = Math.min(1, CFG.side / Math.max(v.videoWidth, v.videoHeight));
    grab.width = Math.round(v.videoWidth * s);
    grab.height = Math.round(v.videoHeight * s);
    grab.getContext("2d").drawImage(v, 0, 0, grab.width, grab.height);
    inFlight = 1; sentAt = now; lastSend = now;
    grab.toBlob((blob) => {
      if (!blob || !ws || ws.readyState !== 1) { inFlight = 0; return; }
      ws.send(blob);
      state.sent++;
    }, "image/jpeg", 0.8);
  }

  function onLiveResult(msg) {
    const now = performance.now();
    state.answered++;
    state.dropped = msg.dropped || 0;
    state.lastResult = msg;
    state.lastLatencyMs = now - sentAt;
    answerTimes.push(now);
    while (answerTimes.length && now - answerTimes[0] > 2000) answerTimes.shift();
    els.fps.textContent = (answerTimes.length / 2).toFixed(1) + " fps · " + Math.round(state.lastLatencyMs) + " ms";
    const n = drawFaces(els.overlay, msg.faces, msg.width, msg.height, els.mirror.checked);
    state.facesDrawn += n;
    document.body.dataset.faces = String(n);
    const face = mainFace(msg.faces);
    renderBars(face);
    setMsg(els.liveMsg, msg.faces.length ? t("faces")(msg.faces.length) : t("no_face"));
    session.add(face);
    assistant.observe(face, now);
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) lastSend = 0; });
  window.addEventListener("resize", () => {
    const r = state.lastResult;
    if (r && running) drawFaces(els.overlay, r.faces, r.width, r.height, els.mirror.checked);
    session.draw();
  });

  // ---- image upload ----
  async function upload(file) {
    if (!file) return;
    showTab(false);
    setMsg(els.imageMsg, t("uploading"));
    const url = URL.createObjectURL(file);
    els.still.src = url;
    els.imageView.hidden = false;
    drawFaces(els.stillOverlay, [], 0, 0, false);
    const body = new FormData();
    body.append("file", file, file.name || "image");
    try {
      const r = await fetch("/v1/predict", { method: "POST", body });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) {
        const err = data.error || {};
        setMsg(els.imageMsg, (err.message || ("HTTP " + r.status)) + " (" + r.status + ")", true);
        return;
      }
      setModel(data.model);
      await (els.still.complete ? Promise.resolve() : new Promise((ok) => { els.still.onload = ok; els.still.onerror = ok; }));
      state.lastUpload = data;
      drawFaces(els.stillOverlay, data.faces, data.width, data.height, false);
      renderBars(mainFace(data.faces));
      setMsg(els.imageMsg, (data.faces.length ? t("faces")(data.faces.length) : t("no_face")) +
        " · " + Math.round(data.timings_ms.total) + " ms");
    } catch (e) {
      setMsg(els.imageMsg, String(e), true);
    }
  }
  els.file.addEventListener("change", () => upload(els.file.files[0]));
  ["dragenter", "dragover"].forEach((k) => els.drop.addEventListener(k, (e) => { e.preventDefault(); els.drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((k) => els.drop.addEventListener(k, (e) => { e.preventDefault(); els.drop.classList.remove("over"); }));
  els.drop.addEventListener("drop", (e) => upload(e.dataTransfer.files[0]));
  window.addEventListener("resize", () => {
    const d = state.lastUpload;
    if (d && !els.imageView.hidden) drawFaces(els.stillOverlay, d.faces, d.width, d.height, false);
  });

  // ---- session timeline: stacked probabilities of the followed face over the whole session ----
  const session = {
    start: 0,
    maxPoints: 1200,
    add(face) {
      if (!this.start) this.start = performance.now();  // the session starts with its first answer
      const tSec = (performance.now() - this.start) / 1000;
      const p = face ? state.classes.map((c) => face.probabilities[c] || 0) : null;
      state.timeline.push({ t: tSec, label: face ? face.label : null, p });
      if (state.timeline.length > this.maxPoints) {  // keep the whole session: halve the resolution
        const merged = [];
        for (let i = 0; i < state.timeline.length; i += 2) merged.push(state.timeline[i]);
        state.timeline = merged;
      }
      this.draw();
      renderLegend();
    },
    draw() {
      const cv = els.timeline, dpr = fitCanvas(cv), ctx = cv.getContext("2d");
      const W = cv.width, H = cv.height, pad = 18 * dpr;
      ctx.clearRect(0, 0, W, H);
      const pts = state.timeline;
      ctx.fillStyle = getComputedStyle(document.body).color;
      ctx.globalAlpha = 0.5;
      ctx.font = 11 * dpr + "px system-ui, sans-serif";
      ctx.textBaseline = "bottom";
      if (!pts.length) { ctx.globalAlpha = 1; return; }
      const t1 = Math.max(pts[pts.length - 1].t, 1);
      ctx.fillText("0 s", 0, H);
      const end = t1 < 120 ? t1.toFixed(0) + " s" : (t1 / 60).toFixed(1) + " min";
      ctx.fillText(end, W - ctx.measureText(end).width, H);
      ctx.globalAlpha = 1;
      const h = H - pad, x = (tt) => (tt / t1) * W;
      for (let i = 0; i < pts.length; i++) {
        // whole device pixels, so that neighbouring samples meet without hairline seams
        const a = pts[i], xa = Math.floor(x(a.t)), xb = i + 1 < pts.length ? Math.floor(x(pts[i + 1].t)) : W;
        const w = Math.max(1, xb - xa);
        if (!a.p) { ctx.fillStyle = "rgba(128,128,128,.12)"; ctx.fillRect(xa, 0, w, h); continue; }
        let acc = 0;
        for (let k = 0; k < a.p.length; k++) {
          const top = Math.round(h - (acc + a.p[k]) * h), bottom = Math.round(h - acc * h);
          acc += a.p[k];
          if (bottom <= top) continue;
          ctx.fillStyle = colorOf(state.classes[k]);
          ctx.fillRect(xa, top, w, bottom - top);
        }
      }
    },
    clear() { state.timeline = []; this.start = performance.now(); this.draw(); renderLegend(); },
  };
  els.clear.addEventListener("click", () => session.clear());

  function renderLegend() {
    const counts = {};
    let total = 0;
    for (const pt of state.timeline) if (pt.label) { counts[pt.label] = (counts[pt.label] || 0) + 1; total++; }
    els.legend.textContent = "";
    for (const c of state.classes) {
      const span = document.createElement("span");
      const dot = document.createElement("i");
      dot.style.background = colorOf(c);
      span.appendChild(dot);
      span.appendChild(document.createTextNode(nameOf(c) + (total ? " " + Math.round(100 * (counts[c] || 0) / total) + "%" : "")));
      els.legend.appendChild(span);
    }
  }

  // ---- assistant: answers an expression held for CFG.holdMs, at most once per CFG.cooldownMs ----
  const assistant = {
    label: null, since: 0, lastAt: -Infinity, lastLabel: null, turn: {},
    observe(face, now) {
      if (!face || face.confidence < CFG.minConf) { this.label = null; return; }
      if (face.label !== this.label) { this.label = face.label; this.since = now; return; }
      const hold = face.label === "neutral" ? CFG.holdMs * 2 : CFG.holdMs;
      if (now - this.since < hold) return;
      if (now - this.lastAt < CFG.cooldownMs) return;
      // the same expression again waits three cool-downs, so a steady face is not told the same thing
      if (face.label === this.lastLabel && now - this.lastAt < 3 * CFG.cooldownMs) return;
      this.reply(face.label, now);
    },
    reply(label, now) {
      const options = TEXT[lang].replies[label];
      if (!options) return;
      const i = (this.turn[label] = ((this.turn[label] ?? -1) + 1) % options.length);
      const text = options[i];
      this.lastAt = now; this.lastLabel = label; this.since = now;
      els.say.textContent = text;
      els.say.dataset.spoken = "1";
      els.say.classList.add("fresh");
      setTimeout(() => els.say.classList.remove("fresh"), 1500);
      state.spoken.push({ label, text, lang, muted: els.mute.checked, t: now });
      if (!els.mute.checked) speak(text);
    },
  };

  function pickVoice(tag) {
    if (!("speechSynthesis" in window)) return null;
    const voices = window.speechSynthesis.getVoices() || [];
    const base = tag.slice(0, 2).toLowerCase();
    return voices.find((v) => v.lang && v.lang.toLowerCase() === tag.toLowerCase()) ||
           voices.find((v) => v.lang && v.lang.toLowerCase().startsWith(base)) || null;
  }
  function speak(text) {
    if (!("speechSynthesis" in window) || typeof SpeechSynthesisUtterance === "undefined") return;
    const u = new SpeechSynthesisUtterance(text);
    u.lang = LANG_TAG[lang];
    const v = pickVoice(u.lang);
    if (v) u.voice = v;
    u.rate = 1.0;
    const synth = window.speechSynthesis;
    if (synth.speaking || synth.pending) synth.cancel();  // never let replies pile up
    window.speechSynthesis.speak(u);
  }
  function updateVoiceNote() {
    if (els.mute.checked) { els.voiceNote.textContent = t("muted_note"); return; }
    const missing = "speechSynthesis" in window && lang !== "en" && !pickVoice(LANG_TAG[lang]) &&
      (window.speechSynthesis.getVoices() || []).length > 0;
    els.voiceNote.textContent = missing ? t("no_voice") : "";
  }
  els.mute.checked = params.get("mute") === "1" || localStorage.getItem("emolens.mute") === "1";
  els.mute.addEventListener("change", () => {
    localStorage.setItem("emolens.mute", els.mute.checked ? "1" : "0");
    if (els.mute.checked && "speechSynthesis" in window) window.speechSynthesis.cancel();
    updateVoiceNote();
  });
  if ("speechSynthesis" in window && "onvoiceschanged" in window.speechSynthesis) {
    window.speechSynthesis.addEventListener("voiceschanged", updateVoiceNote);
  }

  // ---- start ----
  state.classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  buildBars();
  applyLanguage();
  session.draw();
  if (params.get("autostart") === "1") startCamera();
})();

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
    uncertain: "#a1a1aa",   // a face under the server's --min-confidence: neutral grey, no expression claimed
  };
  const colorOf = (label) => COLORS[label] || "#2bb3c0";

  // ---- texts ----
  const TEXT = {
    en: {
      offline: "offline", online: "live", connecting: "connecting…", camera_off: "camera off", language: "Language",
      live: "Live camera", image: "Image", start: "Start camera", stop: "Stop", mirror: "Mirror",
      camera_hint: "Your camera stays on this device; frames go only to this server.",
      drop: "Choose or drop an image (JPEG, PNG, WebP, GIF, TIFF, BMP)", probabilities: "Expression", assistant: "Assistant",
      mute: "Mute", assistant_idle: "Hold an expression for a moment and I will answer.",
      timeline: "Session timeline", clear: "Clear", footer: "Runs offline. Nothing is stored.",
      no_face: "no face", faces: (n) => (n === 1 ? "1 face" : n + " faces"),
      camera_denied: "Camera not available: ", uploading: "Recognising…", no_voice: "",
      muted_note: "Muted: replies are shown, not spoken.",
      following: (name, chosen) => "Face " + name + (chosen ? " · chosen" : " · the largest (click a face to follow it)"),
      json: "JSON", faces_found: "Faces",
      names: { angry: "angry", disgust: "disgust", fear: "fear", happy: "happy", sad: "sad",
               surprise: "surprise", neutral: "neutral", contempt: "contempt", uncertain: "uncertain" },
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
      offline: "ngoại tuyến", online: "trực tiếp", connecting: "đang kết nối…", camera_off: "camera tắt", language: "Ngôn ngữ",
      live: "Camera trực tiếp", image: "Ảnh", start: "Bật camera", stop: "Dừng", mirror: "Lật gương",
      camera_hint: "Camera của bạn chỉ ở trên thiết bị này; khung hình chỉ gửi tới máy chủ này.",
      drop: "Chọn hoặc thả một ảnh (JPEG, PNG, WebP, GIF, TIFF, BMP)", probabilities: "Biểu cảm", assistant: "Trợ lý",
      mute: "Tắt tiếng", assistant_idle: "Hãy giữ một biểu cảm trong giây lát, mình sẽ trả lời.",
      timeline: "Dòng thời gian của phiên", clear: "Xoá", footer: "Chạy ngoại tuyến. Không lưu gì cả.",
      no_face: "không thấy khuôn mặt", faces: (n) => n + " khuôn mặt",
      camera_denied: "Không dùng được camera: ", uploading: "Đang nhận diện…",
      no_voice: "Thiết bị này chưa có giọng đọc tiếng Việt; câu trả lời vẫn hiện ở đây.",
      muted_note: "Đã tắt tiếng: câu trả lời chỉ hiện chữ.",
      following: (name, chosen) => "Khuôn mặt " + name + (chosen ? " · đã chọn" : " · lớn nhất (bấm vào một khuôn mặt để theo dõi)"),
      json: "JSON", faces_found: "Các khuôn mặt",
      names: { angry: "tức giận", disgust: "ghê tởm", fear: "sợ hãi", happy: "vui vẻ", sad: "buồn",
               surprise: "ngạc nhiên", neutral: "bình thường", contempt: "khinh thường", uncertain: "không chắc" },
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
    stillOverlay: $("still-overlay"), imageMsg: $("image-msg"), imageResult: $("image-result"),
    faceList: $("face-list"), jsonLink: $("json-link"), follow: $("follow"),
    topLabel: $("top-label"), topConf: $("top-conf"), bars: $("bars"),
    mute: $("mute"), say: $("say"), voiceNote: $("voice-note"),
    timeline: $("timeline"), legend: $("legend"), clear: $("clear"),
  };

  // state that tests (and curious users, from the console) can read
  const state = {
    lang: "en", classes: [], model: null, connected: false,
    sent: 0, answered: 0, dropped: 0, facesDrawn: 0, lastResult: null, lastLatencyMs: null,
    spoken: [], timeline: [], paused: false, following: null, layout: {}, lastUpload: null,
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
    if (state.following) showFollow(state.following.name, state.following.chosen);
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

  // ---- drawing boxes and labels ----
  function fitCanvas(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return dpr;
  }
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  // shortens text with an ellipsis until it is at most maxW wide
  function fitText(ctx, text, maxW) {
    if (ctx.measureText(text).width <= maxW) return text;
    while (text.length > 1 && ctx.measureText(text + "…").width > maxW) text = text.slice(0, -1);
    return text + "…";
  }
  // a label rectangle for each box, inside `bounds` (the picture), never over another label: above the
  // box, else below it, else inside its top; when all three collide, stacked below (or above) the others
  function placeLabels(boxes, sizes, bounds) {
    const placed = [];
    const order = boxes.map((b, i) => i).sort((i, j) => boxes[i].y - boxes[j].y || boxes[i].x - boxes[j].x);
    for (const i of order) {
      const b = boxes[i], { w, h } = sizes[i];
      const x = clamp(b.x, bounds.x, bounds.x + bounds.w - w);
      const fit = (y) => ({ x, y: clamp(y, bounds.y, bounds.y + bounds.h - h), w, h });
      const free = (r) => !placed.some((p) => p && overlaps(r, p));
      const tries = [fit(b.y - h), fit(b.y + b.h), fit(b.y)];
      for (let k = 1; k <= 2 * boxes.length + 2; k++) tries.push(fit(b.y - h + k * (h + 1)), fit(b.y - h - k * (h + 1)));
      placed[i] = tries.find(free) || tries[0];
    }
    return placed;
  }
  function labelText(f) {
    const id = f.track_id !== null && f.track_id !== undefined ? "  #" + f.track_id : "";
    return f.label === "uncertain" ? nameOf("uncertain") + id : nameOf(f.label) + " " + Math.round(f.confidence * 100) + "%" + id;
  }
  // draws faces of a result whose image is srcW x srcH, shown with object-fit: contain in the canvas box;
  // the geometry (boxes, labels, picture bounds, canvas pixels) is kept in state.layout[canvas.id]
  function drawFaces(canvas, faces, srcW, srcH, mirrored, selected) {
    const dpr = fitCanvas(canvas);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    state.layout[canvas.id] = null;
    if (!faces || !faces.length || !srcW || !srcH) return 0;
    const scale = Math.min(canvas.width / srcW, canvas.height / srcH);
    const bounds = { x: (canvas.width - srcW * scale) / 2, y: (canvas.height - srcH * scale) / 2, w: srcW * scale, h: srcH * scale };
    const fontPx = Math.round(Math.max(11, Math.min(20, bounds.w / 30 / dpr)) * dpr);   // by the picture's width
    ctx.font = "600 " + fontPx + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    const pad = 5 * dpr, th = fontPx + 8 * dpr;
    const boxes = faces.map((f) => {
      let [x1, y1, x2, y2] = f.box;
      if (mirrored) { const m1 = srcW - x2, m2 = srcW - x1; x1 = m1; x2 = m2; }
      return { x: bounds.x + x1 * scale, y: bounds.y + y1 * scale, w: (x2 - x1) * scale, h: (y2 - y1) * scale };
    });
    const texts = faces.map((f) => fitText(ctx, labelText(f), bounds.w - 2 * pad));
    const sizes = texts.map((text) => ({ w: Math.min(bounds.w, Math.ceil(ctx.measureText(text).width + 2 * pad)), h: th }));
    const labels = placeLabels(boxes, sizes, bounds);
    faces.forEach((f, i) => {
      const b = boxes[i], color = colorOf(f.label);
      ctx.lineWidth = Math.max(2, (i === selected ? 5 : 3) * dpr);
      ctx.strokeStyle = color;
      ctx.strokeRect(b.x, b.y, b.w, b.h);
    });
    faces.forEach((f, i) => {
      const r = labels[i], b = boxes[i];
      ctx.fillStyle = colorOf(f.label);
      if (r.y > b.y + b.h + 1 || r.y + r.h < b.y - 1) {   // moved away from its face: a leader line to it
        const x = clamp(b.x + b.w / 2, r.x + 2 * dpr, r.x + r.w - 2 * dpr);
        ctx.fillRect(x - dpr, Math.min(r.y + r.h, b.y + b.h), 2 * dpr, Math.abs(r.y > b.y ? r.y - b.y - b.h : b.y - r.y - r.h));
      }
      ctx.fillRect(r.x, r.y, r.w, r.h);
      ctx.fillStyle = "#fff";
      ctx.fillText(texts[i], r.x + pad, r.y + 4 * dpr);
    });
    state.layout[canvas.id] = { boxes, labels, bounds, width: canvas.width, height: canvas.height, dpr };
    return faces.length;
  }
  // the face under a click on an overlay, or -1 (the smallest box holding the point)
  function faceAt(canvas, ev) {
    const layout = state.layout[canvas.id];
    if (!layout) return -1;
    const r = canvas.getBoundingClientRect();
    const px = (ev.clientX - r.left) * layout.width / r.width, py = (ev.clientY - r.top) * layout.height / r.height;
    let best = -1, area = Infinity;
    layout.boxes.forEach((b, i) => {
      const inLabel = layout.labels[i] && overlaps({ x: px, y: py, w: 0.01, h: 0.01 }, layout.labels[i]);
      if ((px >= b.x && px <= b.x + b.w && py >= b.y && py <= b.y + b.h) || inLabel) {
        if (b.w * b.h < area) { area = b.w * b.h; best = i; }
      }
    });
    return best;
  }

  // ---- which face the panel follows: the largest, or the one clicked ----
  function largest(faces) {
    let best = 0, area = -1;
    faces.forEach((f, i) => {
      const a = (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
      if (a > area) { area = a; best = i; }
    });
    return best;
  }
  const follow = { track: null, chosen: false, upload: 0, uploadChosen: false };
  function liveFace(faces) {
    if (!faces || !faces.length) return null;
    if (follow.track !== null) {                   // kept while it stays in view
      const same = faces.find((f) => f.track_id === follow.track);
      if (same) return same;
    }
    follow.chosen = false;
    const best = faces[largest(faces)];
    follow.track = best.track_id;
    return best;
  }
  function showFollow(name, chosen) {
    state.following = name === null ? null : { name, chosen };
    els.follow.textContent = name === null ? "" : t("following")(name, chosen);
  }

  // ---- tabs: the live stream pauses while the Image tab is open (no frames sent, no answers shown) ----
  function showTab(live) {
    els.tabLive.setAttribute("aria-selected", String(live));
    els.tabImage.setAttribute("aria-selected", String(!live));
    els.panelLive.hidden = !live;
    els.panelImage.hidden = live;
    state.paused = !live;
    if (live) {
      lastSend = 0; inFlight = 0;
      if (running) els.video.play().catch(() => {});
      const r = state.lastResult;
      renderBars(running && r ? liveFace(r.faces) : null);
      showFollow(running && r && r.faces.length ? "#" + follow.track : null, follow.chosen);
    } else {
      if (running) els.video.pause();
      showUpload(state.lastUpload);
    }
  }
  els.tabLive.addEventListener("click", () => showTab(true));
  els.tabImage.addEventListener("click", () => showTab(false));

  // ---- live camera + WebSocket ----
  let connKind = "camera_off";   // no camera, no stream; "offline" is a lost connection while the camera runs
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
    setConn("camera_off");
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
      setConn(running ? "offline" : "camera_off");
      ws = null;
      if (running) { setTimeout(connect, reconnectDelay); reconnectDelay = Math.min(8000, reconnectDelay * 2); }
    };
  }

  // sends the next frame when the last one is answered (or timed out), at most maxFps a second
  function pump(now) {
    if (!running) return;
    requestAnimationFrame(pump);
    const v = els.video;
    if (state.paused || !ws || ws.readyState !== 1 || document.hidden || !v.videoWidth) return;
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
    if (state.paused) return;               // an answer to a frame sent before the Image tab opened
    state.answered++;
    state.dropped = msg.dropped || 0;
    state.lastResult = msg;
    state.lastLatencyMs = now - sentAt;
    answerTimes.push(now);
    while (answerTimes.length && now - answerTimes[0] > 2000) answerTimes.shift();
    els.fps.textContent = (answerTimes.length / 2).toFixed(1) + " fps · " + Math.round(state.lastLatencyMs) + " ms";
    const face = liveFace(msg.faces);
    const n = drawFaces(els.overlay, msg.faces, msg.width, msg.height, els.mirror.checked, msg.faces.indexOf(face));
    state.facesDrawn += n;
    document.body.dataset.faces = String(n);
    renderBars(face);
    showFollow(face ? "#" + face.track_id : null, follow.chosen);
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
  els.overlay.addEventListener("click", (ev) => {     // click a face to follow it; elsewhere: the largest
    const r = state.lastResult, i = faceAt(els.overlay, ev);
    if (!r || !running) return;
    follow.chosen = i >= 0;
    follow.track = i >= 0 ? r.faces[i].track_id : null;
    const face = liveFace(r.faces);
    drawFaces(els.overlay, r.faces, r.width, r.height, els.mirror.checked, r.faces.indexOf(face));
    renderBars(face);
    showFollow(face ? "#" + face.track_id : null, follow.chosen);
  });

  // ---- image upload ----
  async function upload(file) {
    if (!file) return;
    showTab(false);
    setMsg(els.imageMsg, t("uploading"));
    const url = URL.createObjectURL(file);
    els.still.src = url;
    els.imageView.hidden = false;
    showUpload(null);
    const body = new FormData();
    body.append("file", file, file.name || "image");
    try {
      const r = await fetch("/v1/predict", { method: "POST", body });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) {
        const err = data.error || {};
        refused(url, (err.message || ("HTTP " + r.status)) + " (" + r.status + ")");
        return;
      }
      setModel(data.model);
      await (els.still.complete ? Promise.resolve() : new Promise((ok) => { els.still.onload = ok; els.still.onerror = ok; }));
      follow.upload = data.faces.length ? largest(data.faces) : -1;
      follow.uploadChosen = false;
      showUpload(data);
      setMsg(els.imageMsg, (data.faces.length ? t("faces")(data.faces.length) : t("no_face")) +
        " · " + Math.round(data.timings_ms.total) + " ms");
    } catch (e) {
      refused(url, String(e));
    }
  }
  // a refused or failed upload: no picture (it may not be one), no result, only the message
  function refused(url, message) {
    els.imageView.hidden = true;
    els.still.removeAttribute("src");
    URL.revokeObjectURL(url);
    showUpload(null);
    setMsg(els.imageMsg, message, true);
  }
  // shows an upload's answer: boxes and labels, one list entry per face, the JSON, the followed face's bars
  function showUpload(data) {
    state.lastUpload = data || null;
    els.faceList.textContent = "";
    els.imageResult.hidden = !data;
    if (jsonUrl) { URL.revokeObjectURL(jsonUrl); jsonUrl = null; }
    if (!data) { drawFaces(els.stillOverlay, [], 0, 0, false); renderBars(null); showFollow(null); return; }
    const faces = data.faces || [];
    const sel = follow.upload >= 0 && follow.upload < faces.length ? follow.upload : -1;
    drawFaces(els.stillOverlay, faces, data.width, data.height, false, sel);
    jsonUrl = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    els.jsonLink.href = jsonUrl;
    faces.forEach((f, i) => els.faceList.appendChild(faceItem(f, i, data, i === sel)));
    renderBars(sel >= 0 ? faces[sel] : null);
    showFollow(sel >= 0 ? (sel + 1) + "/" + faces.length : null, follow.uploadChosen);
  }
  let jsonUrl = null;
  function faceItem(f, i, data, selected) {
    const li = document.createElement("li");
    li.className = "face" + (selected ? " selected" : "");
    li.dataset.index = String(i);
    const thumb = document.createElement("canvas");
    thumb.className = "thumb";
    thumb.width = thumb.height = 64;
    const img = els.still, sx = (img.naturalWidth || data.width) / data.width, sy = (img.naturalHeight || data.height) / data.height;
    const [x1, y1, x2, y2] = f.box, side = Math.max(x2 - x1, y2 - y1) * 1.15, cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
    try {
      thumb.getContext("2d").drawImage(img, (cx - side / 2) * sx, (cy - side / 2) * sy, side * sx, side * sy, 0, 0, 64, 64);
    } catch (e) { /* an image that cannot be drawn: the label still shows */ }
    const text = document.createElement("div");
    const name = document.createElement("b");
    name.className = "label";
    name.style.color = colorOf(f.label);
    name.textContent = "#" + (f.face || i + 1) + " " + nameOf(f.label) + (f.label === "uncertain" ? "" : " " + Math.round(f.confidence * 100) + "%");
    const tops = document.createElement("span");
    tops.className = "tops";
    tops.textContent = Object.entries(f.probabilities || {}).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([c, p]) => nameOf(c) + " " + Math.round(p * 100) + "%").join(" · ");
    text.append(name, tops);
    li.append(thumb, text);
    li.addEventListener("click", () => chooseUploadFace(i));
    return li;
  }
  function chooseUploadFace(i) {
    const data = state.lastUpload;
    if (!data) return;
    follow.upload = i >= 0 ? i : (data.faces.length ? largest(data.faces) : -1);
    follow.uploadChosen = i >= 0;
    showUpload(data);
  }
  els.stillOverlay.addEventListener("click", (ev) => chooseUploadFace(faceAt(els.stillOverlay, ev)));
  window.emolens.showUpload = (data) => { follow.upload = data && data.faces.length ? largest(data.faces) : -1; showUpload(data); };
  els.file.addEventListener("change", () => upload(els.file.files[0]));
  ["dragenter", "dragover"].forEach((k) => els.drop.addEventListener(k, (e) => { e.preventDefault(); els.drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((k) => els.drop.addEventListener(k, (e) => { e.preventDefault(); els.drop.classList.remove("over"); }));
  els.drop.addEventListener("drop", (e) => upload(e.dataTransfer.files[0]));
  window.addEventListener("resize", () => {
    const d = state.lastUpload;
    if (d && !els.imageView.hidden) drawFaces(els.stillOverlay, d.faces, d.width, d.height, false, follow.upload);
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
      if (!face || face.label === "uncertain" || face.confidence < CFG.minConf) { this.label = null; return; }
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

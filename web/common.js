// Shared helpers for the concert pages: the /ws connection with reconnect,
// safe DOM building (server text only ever goes through textContent),
// a throttled screen-reader announcer and the /stream audio player.

const $ = (sel, root = document) => root.querySelector(sel);

/** Create an element; children are nodes or strings (inserted as text, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

/** Set text only when it changed (avoids needless reflows and screen-reader chatter). */
export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

export function setAttr(node, name, value) {
  if (!node) return;
  const v = String(value);
  if (node.getAttribute(name) !== v) node.setAttribute(name, v);
}

export { $ };

/** "drum-and-bass" -> "Drum and bass" when no label is known. */
export function prettyStyle(id, labels) {
  if (labels && labels.get(id)) return labels.get(id);
  const s = String(id ?? "").replace(/[-_]+/g, " ").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}

/** Id -> label map of the style options in a state (genre ids on the ballot). */
export function styleLabels(state) {
  const m = new Map();
  for (const o of state?.options ?? []) if (o.kind === "style") m.set(o.id, o.label);
  return m;
}

export function mixText(mix, labels) {
  return (mix ?? [])
    .filter((m) => m && m.weight > 0)
    .map((m) => `${prettyStyle(m.style, labels)} ${Math.round(m.weight * 100)}%`)
    .join(" · ");
}

// The mix as text and as a proportional colour bar (rebuilt only when the mix changes).
export function renderMix(textEl, barEl, mix, labels) {
  setText(textEl, mixText(mix, labels) || "—");
  const segs = (mix ?? []).filter((m) => m && m.weight > 0);
  const key = segs.map((m) => `${m.style}:${m.weight}`).join("|");
  if (barEl.dataset.key === key) return;
  barEl.dataset.key = key;
  barEl.replaceChildren(...segs.map((m, i) => {
    const seg = el("span", { class: `seg seg${i % 4}` });
    seg.style.flexGrow = String(m.weight);
    return seg;
  }));
}

export function fmtClock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Polite live region writer. Messages queued within `gap` ms are merged, and an
 * identical message repeated is re-announced (the region is cleared first).
 */
export function makeAnnouncer(region, gap = 900) {
  let queue = [];
  let timer = null;
  let last = 0;
  const flush = () => {
    timer = null;
    last = performance.now();
    const msg = queue.join(" ");
    queue = [];
    region.textContent = "";
    // a fresh text node after clearing makes screen readers speak repeats too
    setTimeout(() => { region.textContent = msg; }, 40);
  };
  return (msg) => {
    if (!msg) return;
    if (!queue.includes(msg)) queue.push(msg);
    if (timer) return;
    const wait = Math.max(0, gap - (performance.now() - last));
    timer = setTimeout(flush, wait);
  };
}

/**
 * Connect to /ws and keep the connection alive. Handlers:
 *   onMessage(msg) for every frame, onStatus(status, detail) with status one of
 *   "connecting" | "open" | "retrying" (detail: seconds until the next try).
 * Returns {send(obj) -> boolean, get connected}.
 */
export function connect({ onMessage, onStatus, device = true }) {
  let ws = null;
  let attempt = 0;
  let retryTimer = null;
  let pingTimer = null;
  let lastSent = 0;
  let open = false;
  const status = (s, d) => onStatus && onStatus(s, d);

  const url = () => {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let u = `${proto}//${location.host}/ws`;
    // cookies carry the signed device id; without cookies, reuse the token from hello
    if (device && !navigator.cookieEnabled) {
      const tok = safeGet("concert_device");
      if (tok) u += `?device=${encodeURIComponent(tok)}`;
    }
    return u;
  };

  const schedule = () => {
    clearTimeout(retryTimer);
    // 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s, each with +-25 % jitter
    const base = Math.min(10, 0.5 * 2 ** attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    attempt += 1;
    status("retrying", delay);
    retryTimer = setTimeout(start, delay * 1000);
  };

  function start() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
    status("connecting");
    let sock;
    try {
      sock = new WebSocket(url());
    } catch {
      schedule();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      open = true;
    };
    sock.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "hello") {
        attempt = 0;
        if (device && typeof msg.device === "string") safeSet("concert_device", msg.device);
        status("open");
      }
      onMessage(msg);
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      open = false;
      ws = null;
      schedule();
    };
    sock.onerror = () => {
      // onclose follows and schedules the retry
    };
  }

  // keep idle connections (and NAT/proxy mappings) alive
  pingTimer = setInterval(() => {
    if (open && ws && performance.now() - lastSent > 25000) send({ type: "ping" });
  }, 5000);

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    lastSent = performance.now();
    return true;
  }

  const retryNow = () => {
    if (!ws && retryTimer) {
      attempt = 0;
      start();
    }
  };
  // phones sleep and switch networks: try again at once when we come back
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") retryNow();
  });
  window.addEventListener("pagehide", () => clearInterval(pingTimer));

  start();
  return {
    send,
    get connected() {
      return open;
    },
  };
}

export function safeGet(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function safeSet(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* private mode: fine */
  }
}

/**
 * Drive an <audio> element playing the endless /stream: starts only on a user
 * gesture, drops the connection on pause (live audio must not resume stale, and
 * it saves phone data), and reconnects with backoff on error, end or stall.
 * onState(s) with s one of "idle" | "connecting" | "playing" | "buffering" | "retrying" | "blocked".
 */
export function streamPlayer(audio, onState, src = "/stream") {
  let want = false;
  let attempt = 0;
  let retryTimer = null;
  let lastTime = -1;
  let stuckSince = 0;
  let current = "idle";
  let gen = 0; // bumps on every (re)load so stale play() rejections are ignored
  const set = (s) => {
    if (s !== current) {
      current = s;
      onState(s);
    }
  };

  const load = () => {
    // a fresh URL each time so no cache or half-dead connection is reused
    audio.src = `${src}${src.includes("?") ? "&" : "?"}t=${Date.now().toString(36)}`;
    lastTime = -1;
    stuckSince = performance.now();
    set(attempt ? "retrying" : "connecting");
    const mine = ++gen;
    const p = audio.play();
    if (p && p.catch) {
      p.catch((err) => {
        if (!want || mine !== gen) return;
        if (err && err.name === "NotAllowedError") {
          want = false;
          set("blocked");
        } else retry();
      });
    }
  };

  const retry = () => {
    if (!want || retryTimer) return;
    const delay = Math.min(10, 1 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    attempt += 1;
    set("retrying");
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (want) load();
    }, delay * 1000);
  };

  audio.addEventListener("playing", () => {
    if (want) set("playing");
  });
  audio.addEventListener("waiting", () => {
    // the buffer ran dry; the watchdog below reconnects if it stays dry
    if (want && current === "playing") set("buffering");
  });
  audio.addEventListener("error", () => want && retry());
  audio.addEventListener("ended", () => want && retry()); // the stream never ends on purpose
  audio.addEventListener("pause", () => {
    // the native control (or the OS: a call, a headset unplugged) paused it
    if (want && !audio.ended && !retryTimer && audio.error === null) stop();
  });
  audio.addEventListener("play", () => {
    // the native control started it
    if (!want) {
      want = true;
      attempt = 0;
      if (!audio.currentSrc || !audio.src) load();
      else set("connecting");
    }
  });

  // watchdog: a live stream whose clock stops for 8 s while we want sound is dead
  setInterval(() => {
    if (!want || retryTimer) return;
    const t = audio.currentTime;
    const now = performance.now();
    if (t !== lastTime) {
      lastTime = t;
      stuckSince = now;
      if (current === "playing") attempt = 0;
      return;
    }
    if (now - stuckSince > 8000) {
      stuckSince = now;
      retry();
    }
  }, 1000);

  function play() {
    want = true;
    attempt = 0;
    clearTimeout(retryTimer);
    retryTimer = null;
    load();
  }

  function stop() {
    want = false;
    gen += 1;
    clearTimeout(retryTimer);
    retryTimer = null;
    audio.pause();
    // drop the HTTP connection; the next play starts at the live edge
    audio.removeAttribute("src");
    audio.load();
    set("idle");
  }

  return {
    play,
    stop,
    toggle() {
      if (want) stop();
      else play();
    },
    get playing() {
      return want;
    },
  };
}

/** Lock-screen / notification metadata where supported. */
export function mediaSession(np, labels) {
  if (!("mediaSession" in navigator) || !np || typeof MediaMetadata === "undefined") return;
  try {
    navigator.mediaSession.metadata = new MediaMetadata({
      title: `${prettyStyle(np.genre, labels)}${np.bpm ? ` · ${Math.round(np.bpm)} BPM` : ""}`,
      artist: "Concert — live crowd-steered music",
    });
  } catch {
    /* ignore */
  }
}

/**
 * Keep `list`'s children in the order of `items`, reusing one row per key so
 * focus and screen-reader position survive the frequent state pushes.
 * create(key) -> {li, ...}; update(row, item) fills it in.
 */
export function keyedList(list, rows, items, keyOf, create, update) {
  const keys = items.map((it) => String(keyOf(it)));
  for (const [k, row] of rows) {
    if (!keys.includes(k)) {
      row.li.remove();
      rows.delete(k);
    }
  }
  items.forEach((it, idx) => {
    const k = keys[idx];
    let row = rows.get(k);
    if (!row) {
      row = create(k, it);
      rows.set(k, row);
    }
    update(row, it);
    if (list.children[idx] !== row.li) {
      const focused = row.li.contains(document.activeElement) ? document.activeElement : null;
      list.insertBefore(row.li, list.children[idx] ?? null);
      if (focused) focused.focus({ preventScroll: true });
    }
  });
}

// The live-protocol client for the browser (mirrors hub/client.py).
//
// One WebSocket to ws(s)://<page host>:<ws_port>. Every request carries a unique id and gets a promise;
// the hub answers `ok` or `error` with the same id. Snapshots (full state of a topic, growing version)
// are kept per topic; one may come in a reply's frame (its `snapshot` member), taken exactly as a
// snapshot frame before the request settles. When the socket drops the client shows "reconnecting", retries with backoff,
// sends `hello` with the stored device token (localStorage) and staff session token (sessionStorage),
// then re-sends every request that was not answered *with the same id*: the hub answers a repeated id
// from its stored reply and never applies it twice.

const DEVICE_KEY = "storehub.device_token";
const SESSION_KEY = "storehub.session_token";
const BACKOFF_MS = [250, 500, 1000, 2000, 3000]; // then stays at the last value (plus jitter)
const PING_EVERY_MS = 10000;
const PING_TIMEOUT_MS = 6000;

export class LiveError extends Error {
  constructor(code, message, field = null, frame = null) {
    super(message);
    this.name = "LiveError";
    this.code = code;
    this.field = field;
    this.frame = frame;
  }
}

function newIdPrefix() {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class LiveClient extends EventTarget {
  constructor({ hubInfoUrl = "/api/hub", storage = window.localStorage, session = window.sessionStorage } = {}) {
    super();
    this.hubInfoUrl = hubInfoUrl;
    this.storage = storage;
    this.session = session;
    this.info = null; // /api/hub
    this.welcome = null;
    this.ws = null;
    this.state = "idle"; // idle | connecting | open | reconnecting
    this.ready = false; // welcome received and hello done (if we had a device token)
    this.attempt = 0;
    this.snapshots = new Map(); // topic -> {version, state, epoch}
    this.pending = new Map(); // id -> {text, resolve, reject, preLogin}
    this.epoch = 0; // connection count: versions restart when the hub restarts
    this._prefix = newIdPrefix();
    this._seq = 0;
    this._timer = null;
    this._pingTimer = null;
    this.registerId = null;
    this.staff = null;
  }

  get deviceToken() {
    return this.storage.getItem(DEVICE_KEY) || "";
  }
  set deviceToken(v) {
    if (v) this.storage.setItem(DEVICE_KEY, v);
    else this.storage.removeItem(DEVICE_KEY);
  }
  get sessionToken() {
    return this.session.getItem(SESSION_KEY) || "";
  }
  set sessionToken(v) {
    if (v) this.session.setItem(SESSION_KEY, v);
    else this.session.removeItem(SESSION_KEY);
  }

  newId() {
    // unique across page reloads too: a random prefix per page load plus a counter
    this._seq += 1;
    return `${this._prefix}-${this._seq}`;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state, attempt: this.attempt });
  }

  async start() {
    this._setState("connecting");
    await this._connect();
  }

  async _fetchInfo() {
    const r = await fetch(this.hubInfoUrl, { cache: "no-store" });
    if (!r.ok) throw new Error(`hub info: HTTP ${r.status}`);
    this.info = await r.json();
    this._emit("info", this.info);
    return this.info;
  }

  async _connect() {
    clearTimeout(this._timer);
    let info;
    try {
      info = await this._fetchInfo(); // the hub may have restarted with another port: ask each time
    } catch (err) {
      this._scheduleReconnect();
      return;
    }
    const scheme = info.ws_scheme || (location.protocol === "https:" ? "wss" : "ws");
    const url = `${scheme}://${location.hostname}:${info.ws_port}/`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onmessage = (ev) => this._onFrame(ws, ev.data);
    ws.onclose = () => this._onClose(ws);
    ws.onerror = () => {}; // onclose follows
  }

  _onClose(ws) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    clearInterval(this._pingTimer);
    this._dropConnectionBound(ws);
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    clearTimeout(this._timer);
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = base + Math.floor(Math.random() * base * 0.2);
    this.attempt += 1;
    this.state = "reconnecting";
    this._emit("state", { state: "reconnecting", attempt: this.attempt, delay });
    this._timer = setTimeout(() => this._connect(), delay);
  }

  /** Close the socket as if the network dropped (used by the UI's "reconnect now" and by tests). */
  drop() {
    if (this.ws) this.ws.close();
  }

  _onFrame(ws, text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.welcome = frame;
        this.epoch += 1;
        this._afterWelcome(ws);
        break;
      case "snapshot":
        this._onSnapshot(frame);
        break;
      case "ok":
      case "error": {
        // a snapshot due when the reply left travels in it: the state is current when the request settles
        if (frame.snapshot && typeof frame.snapshot === "object") {
          this._onSnapshot(frame.snapshot);
          delete frame.snapshot;
        }
        const p = this.pending.get(frame.id);
        if (!p) return;
        this.pending.delete(frame.id);
        if (frame.type === "ok") p.resolve(frame.result);
        else p.reject(new LiveError(frame.code, frame.message, frame.field, frame));
        break;
      }
      default:
        break;
    }
  }

  _onSnapshot(frame) {
    const prev = this.snapshots.get(frame.topic);
    // versions only grow within one hub run; a new connection may be a restarted hub, so the
    // first snapshot on each connection is taken whatever its number
    if (prev && prev.epoch === this.epoch && prev.version >= frame.version) return;
    this.snapshots.set(frame.topic, { version: frame.version, state: frame.state, epoch: this.epoch });
    this._emit("snapshot", { topic: frame.topic, version: frame.version, state: frame.state });
  }

  async _afterWelcome(ws) {
    this._emit("welcome", this.welcome);
    if (this.deviceToken) {
      try {
        const r = await this._sendNow(ws, "hello", {
          device_token: this.deviceToken,
          session_token: this.sessionToken,
        });
        this.registerId = r.register_id;
        if (!r.resumed) this.sessionToken = "";
        this.staff = r.resumed ? r.staff : null;
        this._emit("auth", { paired: true, registerId: r.register_id, staff: this.staff, resumed: r.resumed });
      } catch (err) {
        if (ws !== this.ws) return;
        if (err instanceof LiveError && err.code === "not_paired") {
          this.deviceToken = "";
          this.sessionToken = "";
          this.staff = null;
          this._emit("auth", { paired: false, staff: null, message: err.message });
        }
      }
    } else {
      this._emit("auth", { paired: false, staff: null });
    }
    if (ws !== this.ws) return;
    this.ready = true;
    this.attempt = 0;
    this.state = "open";
    this._emit("state", { state: "open", attempt: 0 });
    // re-send, with the same ids, what was not answered before the drop
    for (const [, p] of this.pending) {
      if (!p.connectionBound && p.sentOn !== ws) {
        p.sentOn = ws;
        ws.send(p.text);
      }
    }
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => this._heartbeat(ws), PING_EVERY_MS);
  }

  async _heartbeat(ws) {
    if (ws !== this.ws) return;
    const t = setTimeout(() => {
      if (ws === this.ws) ws.close(); // a half-open connection: start over
    }, PING_TIMEOUT_MS);
    try {
      await this._sendNow(ws, "ping", {});
    } catch {
      /* closed */
    } finally {
      clearTimeout(t);
    }
  }

  // A request on this very socket, not queued and not re-sent (hello and ping belong to one connection).
  _sendNow(ws, type, fields) {
    const id = this.newId();
    const text = JSON.stringify({ type, id, ...fields });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { text, resolve, reject, sentOn: ws, connectionBound: true });
      try {
        ws.send(text);
      } catch (err) {
        this.pending.delete(id);
        reject(err);
      }
    });
  }

  /**
   * Send one command; resolves with its `result`, rejects with LiveError on `error`.
   * While disconnected the request waits and is sent (once) after reconnect.
   */
  request(type, fields = {}, { id = null } = {}) {
    const msgId = id || this.newId();
    const text = JSON.stringify({ type, id: msgId, ...fields });
    return new Promise((resolve, reject) => {
      const p = { text, resolve, reject, sentOn: null };
      this.pending.set(msgId, p);
      if (this.ws && this.ready && this.ws.readyState === WebSocket.OPEN) {
        p.sentOn = this.ws;
        this.ws.send(text);
      }
    });
  }

  _dropConnectionBound(ws) {
    for (const [id, p] of this.pending) {
      if (p.connectionBound && p.sentOn === ws) {
        this.pending.delete(id);
        p.reject(new LiveError("disconnected", "The connection to the hub dropped."));
      }
    }
  }

  async pair(code, deviceName = "") {
    const r = await this.request("pair", { code, device_name: deviceName });
    this.deviceToken = r.device_token;
    this.registerId = r.register_id;
    this._emit("auth", { paired: true, registerId: r.register_id, staff: null });
    return r;
  }

  async login(staff, pin) {
    const r = await this.request("login", { staff, pin });
    this.sessionToken = r.session_token;
    this.staff = r.staff;
    this._emit("auth", { paired: true, registerId: this.registerId, staff: r.staff });
    return r;
  }

  async logout() {
    try {
      await this.request("logout", {});
    } finally {
      this.sessionToken = "";
      this.staff = null;
      this._emit("auth", { paired: true, registerId: this.registerId, staff: null });
    }
  }

  forgetDevice() {
    this.deviceToken = "";
    this.sessionToken = "";
    this.staff = null;
    this._emit("auth", { paired: false, staff: null });
  }

  snapshot(topic) {
    const s = this.snapshots.get(topic);
    return s ? s.state : null;
  }
}

// The web phone: log in through /api/v1, register JsSIP over /sip with the same credentials
// (the SIP password is the web password unless the admin set a separate one; see
// docs/webphone.md), then call, answer, mute, hold and send DTMF.

import {
  addText, api, applyI18n, bindForm, el, fmtDuration, fmtTime, setupLangToggle, showError,
  t, table, whenLoggedOut,
} from "/static/common.js";
import { checkJapaneseNumber, NUMBER_TEXT } from "/static/jpnumber.js";

addText(NUMBER_TEXT);
addText({
  agent_title: ["Webフォン", "Web phone"],
  dial: ["発信", "Dial"], number: ["電話番号", "Number"], call: ["発信", "Call"],
  hangup: ["切断", "Hang up"], mute: ["ミュート", "Mute"], unmute: ["ミュート解除", "Unmute"],
  hold: ["保留", "Hold"], unhold: ["保留解除", "Resume"], dialpad: ["ダイヤルパッド", "Dial pad"],
  incoming: ["着信", "Incoming call"], answer: ["応答", "Answer"], decline: ["拒否", "Decline"],
  history: ["通話履歴", "Call history"], recordings: ["録音", "Recordings"], refresh: ["更新", "Refresh"],
  reg_connecting: ["接続中…", "Connecting…"], reg_registered: ["待受中", "Registered"],
  reg_unregistered: ["未登録", "Not registered"], reg_failed: ["登録失敗", "Registration failed"],
  reg_lost: ["接続が切れました。再接続しています…", "Connection lost. Reconnecting…"],
  reg_back: ["再接続しました。", "Reconnected."],
  st_idle: ["待機中", "Idle"], st_calling: ["発信中…", "Calling…"], st_ringing: ["呼出中…", "Ringing…"],
  st_incoming: ["着信中", "Incoming call"], st_in_call: ["通話中", "In call"], st_on_hold: ["保留中", "On hold"],
  st_ended: ["通話終了", "Call ended"], st_failed: ["接続できませんでした", "Call failed"],
  from: ["発信元", "From"], to: ["相手", "To"], when: ["日時", "When"], direction: ["方向", "Direction"],
  talk: ["通話時間", "Talk time"], result: ["結果", "Result"], peer: ["相手", "Other party"],
  mic_denied: ["マイクの使用が拒否されました。ブラウザのアドレスバーのマイク設定で許可してから、もう一度発信してください。",
    "Microphone access was refused. Allow the microphone in the browser's site settings, then call again."],
  mic_missing: ["マイクが見つかりません。接続を確認してください。", "No microphone found. Check that one is connected."],
  restricted: ["このIDは発信が制限されています。着信は受けられます。管理者にお問い合わせください。",
    "This ID is restricted: outbound calls are not allowed, incoming calls still work. Contact your admin."],
  cause_busy: ["相手が話し中です。", "The other party is busy."],
  cause_rejected: ["発信が拒否されました（制限または許可されていない番号）。", "The call was refused (restricted or not allowed)."],
  cause_unavailable: ["相手に接続できません。", "The other party is unavailable."],
  cause_no_answer: ["応答がありませんでした。", "No answer."],
  not_registered: ["まだ登録されていません。接続を待ってください。", "Not registered yet; wait for the connection."],
  wrong_id_format: ["ID@ドメイン の形式で入力してください。", "Enter your ID as id@domain."],
});

const $ = (id) => document.getElementById(id);
const state = {
  ua: null, session: null, incoming: null, login: "", domain: "", timer: null,
  answeredAt: null, status: "idle", registered: false, restricted: false, lostOnce: false,
};
// Diagnostics for support staff and for the browser tests: the current state, never secrets.
window.webphone = {
  get status() { return state.status; },
  get registered() { return state.registered; },
  get session() { return state.session; },
  remoteStream: null,
};

function banner(kind, key) {
  const box = $("banner");
  box.replaceChildren(key ? el("p", { class: `notice ${kind}`, role: kind === "bad" ? "alert" : "status", dataset: { key } }, t(key)) : "");
}

function setReg(key, cls) {
  const node = $("reg-state");
  node.textContent = t(key);
  node.dataset.key = key;
  node.className = `status ${cls}`;
}

function setStatus(status) {
  state.status = status;
  const node = $("call-state");
  node.textContent = t(`st_${status}`);
  node.dataset.status = status;
  const active = ["calling", "ringing", "in_call", "on_hold", "incoming"].includes(status);
  $("hangup").disabled = !active || status === "incoming";
  $("call").disabled = active;
  $("mute").disabled = !["in_call", "on_hold"].includes(status);
  $("hold").disabled = !["in_call", "on_hold"].includes(status);
}

function startTimer() {
  state.answeredAt = Date.now();
  clearInterval(state.timer);
  const tick = () => { $("timer").textContent = fmtDuration((Date.now() - state.answeredAt) / 1000); };
  tick();
  state.timer = setInterval(tick, 1000);
}

function stopTimer() {
  clearInterval(state.timer);
  state.timer = null;
}

async function microphone() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (err) {
    banner("bad", err && err.name === "NotFoundError" ? "mic_missing" : "mic_denied");
    return null;
  }
}

function causeKey(cause) {
  const C = JsSIP.C.causes;
  if (cause === C.BUSY) return "cause_busy";
  if (cause === C.REJECTED || cause === C.AUTHENTICATION_ERROR) return state.restricted ? "restricted" : "cause_rejected";
  if (cause === C.NO_ANSWER || cause === C.EXPIRES) return "cause_no_answer";
  if (cause === C.USER_DENIED_MEDIA_ACCESS) return "mic_denied";
  return "cause_unavailable";
}

function attachRemote(session) {
  const pc = session.connection;
  if (!pc) return;
  const play = (stream) => {
    window.webphone.remoteStream = stream;
    $("remote-audio").srcObject = stream;
  };
  pc.addEventListener("track", (event) => play(event.streams[0] || new MediaStream([event.track])));
  const receivers = pc.getReceivers().filter((r) => r.track);
  if (receivers.length) play(new MediaStream(receivers.map((r) => r.track)));
}

function bindSession(session) {
  state.session = session;
  session.on("peerconnection", () => attachRemote(session));
  if (session.connection) attachRemote(session);
  session.on("progress", () => { if (state.status === "calling") setStatus("ringing"); });
  session.on("accepted", () => { setStatus("in_call"); startTimer(); });
  session.on("confirmed", () => { if (state.status !== "in_call") { setStatus("in_call"); startTimer(); } });
  session.on("hold", () => setStatus("on_hold"));
  session.on("unhold", () => setStatus("in_call"));
  const finish = (failed) => (event) => {
    stopTimer();
    state.session = null;
    state.incoming = null;
    $("incoming").hidden = true;
    $("mute").setAttribute("aria-pressed", "false");
    $("mute").textContent = t("mute");
    $("hold").setAttribute("aria-pressed", "false");
    $("hold").textContent = t("hold");
    setStatus(failed ? "failed" : "ended");
    if (failed && event.originator !== "local") banner("bad", causeKey(event.cause));
    loadHistory();
  };
  session.on("ended", finish(false));
  session.on("failed", finish(true));
}

async function dial(values, form) {
  banner();
  const checked = checkJapaneseNumber(values.number || "");
  if (checked.error) throw Object.assign(new Error(t(checked.error)), { field: "number", status: 0 });
  if (state.restricted) throw Object.assign(new Error(t("restricted")), { field: "number" });
  if (!state.registered) throw Object.assign(new Error(t("not_registered")), { field: "number" });
  const stream = await microphone();
  if (!stream) return;
  setStatus("calling");
  $("call-peer").textContent = `${t("to")}: ${checked.national}`;
  const session = state.ua.call(`sip:${checked.national}@${state.domain}`, {
    mediaStream: stream,
    pcConfig: { iceServers: [] },
    rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
  });
  bindSession(session);
}

function onIncoming(session) {
  if (state.session) {
    session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
    return;
  }
  state.incoming = session;
  bindSession(session);
  const from = session.remote_identity.display_name || session.remote_identity.uri.user;
  $("incoming-from").textContent = `${t("from")}: ${from}`;
  $("incoming").hidden = false;
  $("call-peer").textContent = `${t("from")}: ${from}`;
  setStatus("incoming");
  $("answer").focus();
}

async function answer() {
  const session = state.incoming;
  if (!session) return;
  const stream = await microphone();
  if (!stream) {
    session.terminate({ status_code: 480, reason_phrase: "Microphone Unavailable" });
    return;
  }
  $("incoming").hidden = true;
  session.answer({ mediaStream: stream, pcConfig: { iceServers: [] } });
}

function startPhone(password) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new JsSIP.WebSocketInterface(`${scheme}://${location.host}/sip`);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${state.login}@${state.domain}`,
    password,
    register: true,
    register_expires: 300,
    session_timers: false,
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 30,
    user_agent: "OutboundPro-WebPhone (JsSIP)",
  });
  state.ua = ua;
  setReg("reg_connecting", "ringing");
  ua.on("connected", () => {
    if (state.lostOnce) banner("ok", "reg_back");
  });
  ua.on("disconnected", () => {
    state.registered = false;
    state.lostOnce = true;
    setReg("reg_lost", "offline");
    banner("warn", "reg_lost");
  });
  ua.on("registered", () => { state.registered = true; setReg("reg_registered", "registered"); });
  ua.on("unregistered", () => { state.registered = false; setReg("reg_unregistered", "offline"); });
  ua.on("registrationFailed", (event) => {
    state.registered = false;
    setReg("reg_failed", "offline");
    if (event.response && event.response.status_code === 403) banner("bad", "cause_rejected");
  });
  ua.on("newRTCSession", (event) => { if (event.originator === "remote") onIncoming(event.session); });
  ua.start();
}

async function loadHistory() {
  try {
    const [cdrs, recordings] = await Promise.all([api("GET", "/cdrs?limit=50"), api("GET", "/recordings?limit=50")]);
    $("history").replaceChildren(table(cdrs, [
      ["when", (r) => fmtTime(r.setup_at)],
      ["direction", (r) => r.direction],
      ["peer", (r) => (r.direction === "inbound" ? r.caller : r.callee)],
      ["talk", (r) => fmtDuration(r.talk_seconds || 0)],
      ["result", (r) => r.status],
    ]));
    $("recordings").replaceChildren(table(recordings, [
      ["when", (r) => fmtTime(r.started_at)],
      ["peer", (r) => (r.direction === "inbound" ? r.caller : r.callee)],
      ["talk", (r) => fmtDuration(r.duration)],
      ["play", (r) => el("button", { type: "button", class: "secondary", onclick: () => play(r.id) }, t("play"))],
    ]));
  } catch (err) {
    $("history").replaceChildren(el("p", { class: "notice bad" }, err.message));
  }
}

function play(id) {
  const audio = $("playback");
  audio.hidden = false;
  audio.src = `/api/v1/recordings/${id}/audio`;
  audio.play().catch(() => {});
}

async function login(values) {
  const text = (values.login || "").trim();
  if (!text.includes("@")) throw Object.assign(new Error(t("wrong_id_format")), { field: "login" });
  const session = await api("POST", "/login", { login: text, password: values.password });
  if (session.role !== "user") {
    await api("POST", "/logout");
    throw Object.assign(new Error(t("wrong_role")), { field: "login" });
  }
  state.login = session.login;
  state.domain = session.domain;
  const me = await api("GET", "/me");
  state.restricted = me.identity && me.identity.status === "restricted";
  if (state.restricted) banner("warn", "restricted");
  $("who").textContent = `${state.login}@${state.domain}`;
  $("login-form").hidden = true;
  $("phone").hidden = false;
  $("logout").hidden = false;
  setStatus("idle");
  startPhone(values.password);
  $("login-password").value = "";
  loadHistory();
}

function buildDialpad() {
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
  $("dialpad").replaceChildren(...keys.map((key) => el("button", {
    type: "button",
    dataset: { key },
    onclick: () => {
      if (state.session && ["in_call", "on_hold"].includes(state.status)) {
        // RFC 4733 in the media, as a desk phone sends: carriers and IVRs rarely take SIP INFO
        state.session.sendDTMF(key, {
          transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833, duration: 160, interToneGap: 80,
        });
      } else {
        $("number").value += key;
      }
    },
  }, key)));
}

function setup() {
  setupLangToggle($("lang"), () => {
    if (state.status) setStatus(state.status);
    const reg = $("reg-state").dataset.key;
    if (reg) $("reg-state").textContent = t(reg);
  });
  buildDialpad();
  bindForm($("login-form"), login);
  bindForm($("dial-form"), dial);
  $("hangup").addEventListener("click", () => { if (state.session) state.session.terminate(); });
  $("answer").addEventListener("click", answer);
  $("decline").addEventListener("click", () => {
    if (state.incoming) state.incoming.terminate({ status_code: 603, reason_phrase: "Decline" });
  });
  $("mute").addEventListener("click", () => {
    if (!state.session) return;
    const muted = state.session.isMuted().audio;
    if (muted) state.session.unmute({ audio: true }); else state.session.mute({ audio: true });
    $("mute").setAttribute("aria-pressed", String(!muted));
    $("mute").textContent = t(muted ? "mute" : "unmute");
  });
  $("hold").addEventListener("click", () => {
    if (!state.session) return;
    const held = state.session.isOnHold().local;
    if (held) state.session.unhold(); else state.session.hold();
    $("hold").setAttribute("aria-pressed", String(!held));
    $("hold").textContent = t(held ? "hold" : "unhold");
  });
  $("refresh-history").addEventListener("click", loadHistory);
  $("logout").addEventListener("click", async () => {
    if (state.ua) state.ua.stop();
    await api("POST", "/logout").catch(() => {});
    location.reload();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.incoming && state.status === "incoming") $("decline").click();
  });
  whenLoggedOut(() => banner("bad", "error_session"));
  applyI18n();
}

setup();

// Admin console: booths and numbers, affiliations and their restrictions, SIP devices, the
// live board (pushed over /api/v1/live), recordings, CDRs and the audit log. Every list comes
// from /api/v1, which applies the accounts policy: a scoped sub-admin sees only its part.

import {
  addText, api, applyI18n, bindForm, el, fmtDuration, fmtTime, setupLangToggle, setupTabs,
  t, table, whenLoggedOut,
} from "/static/common.js";

addText({
  admin_title: ["管理コンソール", "Admin console"],
  tab_board: ["状態", "Live status"], tab_users: ["ユーザー・番号", "Users & numbers"],
  tab_affiliations: ["所属・制限", "Affiliations"], tab_devices: ["SIP機器", "SIP devices"],
  tab_recordings: ["録音", "Recordings"], tab_cdrs: ["通話履歴", "Call records"], tab_audit: ["監査ログ", "Audit log"],
  new_user: ["ユーザー（ブース）追加", "Add a user (booth)"], user_login: ["ID", "ID"],
  display_name: ["表示名", "Display name"], password_optional: ["パスワード（空欄なら自動生成）", "Password (blank: generated)"],
  affiliation: ["所属", "Affiliation"], numbers: ["電話番号（カンマ区切り）", "Numbers (comma separated)"],
  bind_number: ["番号の割り当て", "Assign a number"], number: ["番号", "Number"],
  edit_affiliation: ["所属の追加・変更", "Add or change an affiliation"], name: ["名前", "Name"],
  outbound_allowed: ["発信を許可", "Outbound calls allowed"], recordings_allowed: ["録音の閲覧を許可", "May open recordings"],
  allowed_prefixes: ["発信可能な番号の先頭（カンマ区切り、空欄は制限なし）", "Allowed number prefixes (comma separated, blank: any)"],
  max_concurrent: ["同時通話数の上限（空欄は制限なし）", "Max concurrent calls (blank: no limit)"],
  new_device: ["機器の追加", "Add a device"], note: ["メモ", "Note"], booth: ["ブース", "Booth"],
  from_date: ["開始", "From"], to_date: ["終了", "To"], direction: ["方向", "Direction"], csv: ["CSV出力", "Export CSV"],
  status: ["状態", "Status"], actions: ["操作", "Actions"], when: ["日時", "When"], actor: ["実行者", "Actor"],
  action: ["操作", "Action"], target: ["対象", "Target"], outcome: ["結果", "Outcome"], source: ["接続元", "Source"],
  peer: ["相手", "Other party"], talk: ["通話時間", "Talk time"], result: ["結果", "Result"], accounts: ["アカウント", "Accounts"],
  restrict: ["発信制限", "Restrict"], unrestrict: ["制限解除", "Lift restriction"], revoke: ["削除", "Revoke"],
  confirm_revoke: ["このIDを削除しますか？登録と通話はすぐに終了します。", "Revoke this ID? Its registrations and sessions end now."],
  new_aff: ["（新規）", "(new)"],
  s_offline: ["オフライン", "Offline"], s_registered: ["待受中", "Registered"], s_ringing: ["呼出中", "Ringing"], s_in_call: ["通話中", "In call"],
  restricted_badge: ["発信制限中", "Restricted"],
  board_live: ["リアルタイムで更新されます。", "Updated live."],
  board_no_calls: ["リアルタイムで更新されます（通話状態はB2BUAの稼働後に表示されます）。", "Updated live (call states appear once the B2BUA runs)."],
  board_lost: ["状態の更新が途切れました。再接続しています…", "Live updates lost. Reconnecting…"],
  generated_password: ["自動生成されたパスワード（この一度だけ表示されます）：", "Generated password (shown only once):"],
  user_role_here: ["ユーザーIDは Webフォン（/agent）をご利用ください。", "User IDs use the web phone (/agent)."],
});

const $ = (id) => document.getElementById(id);
const app = { me: null, affiliations: [], users: [], live: null, liveRetry: 1000 };

function affName(id) {
  const found = app.affiliations.find((a) => a.id === id);
  return found ? found.name : t("none");
}

function options(select, items, label, blank) {
  select.replaceChildren(
    ...(blank ? [el("option", { value: "" }, blank)] : []),
    ...items.map((item) => el("option", { value: String(item.id) }, label(item))),
  );
}

// -- live board -------------------------------------------------------------------------

function renderBoard(message) {
  $("board-note").textContent = t(message.calls_available ? "board_live" : "board_no_calls");
  $("board").replaceChildren(...message.booths.map((b) => el(
    "div",
    { class: "booth", dataset: { login: b.login, status: b.status } },
    el("strong", {}, b.display_name || b.login), " ",
    el("small", {}, b.login), el("br"),
    el("span", { class: `status ${b.status}` }, t(`s_${b.status}`)),
    b.peer ? el("span", {}, ` ${b.peer}`) : null,
    b.since ? el("span", { class: "timer", dataset: { since: String(b.since) } }, ` ${fmtDuration(Date.now() / 1000 - b.since)}`) : null,
    b.restricted ? el("div", { class: "notice warn" }, t("restricted_badge")) : null,
    el("div", {}, el("small", {}, affName(b.affiliation_id))),
  )));
}

function connectLive() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/live`);
  app.live = ws;
  ws.addEventListener("open", () => { app.liveRetry = 1000; });
  ws.addEventListener("message", async (event) => {
    const text = typeof event.data === "string" ? event.data : await event.data.text();
    renderBoard(JSON.parse(text));
  });
  ws.addEventListener("close", (event) => {
    if (app.live !== ws || event.code === 4401 || event.code === 4403) return;
    $("board-note").textContent = t("board_lost");
    setTimeout(connectLive, app.liveRetry);
    app.liveRetry = Math.min(app.liveRetry * 2, 30000);
  });
}

setInterval(() => {
  for (const node of document.querySelectorAll(".booth .timer")) {
    node.textContent = ` ${fmtDuration(Date.now() / 1000 - Number(node.dataset.since))}`;
  }
}, 1000);

// -- lists ------------------------------------------------------------------------------

async function loadAffiliations() {
  app.affiliations = await api("GET", "/affiliations");
  options($("u-aff"), app.affiliations, (a) => a.name, t("none"));
  options($("d-aff"), app.affiliations, (a) => a.name, t("none"));
  options($("a-id"), app.affiliations, (a) => a.name, t("new_aff"));
  $("affiliations").replaceChildren(table(app.affiliations, [
    ["name", (a) => a.name],
    ["outbound_allowed", (a) => (a.policy.outbound_allowed ? "✓" : "✗")],
    ["allowed_prefixes", (a) => a.policy.allowed_prefixes.join(", ")],
    ["max_concurrent", (a) => a.policy.max_concurrent_calls ?? ""],
    ["recordings_allowed", (a) => (a.policy.recordings_allowed ? "✓" : "✗")],
  ]));
}

async function userAction(user, method, path, body, confirmKey) {
  if (confirmKey && !window.confirm(t(confirmKey))) return;
  try {
    await api(method, path, body);
    await loadUsers();
  } catch (err) {
    window.alert(err.message);
  }
}

async function loadUsers() {
  app.users = await api("GET", "/users");
  options($("n-user"), app.users.filter((u) => u.status !== "revoked"), (u) => u.login);
  $("users").replaceChildren(table(app.users.filter((u) => u.status !== "revoked"), [
    ["user_login", (u) => u.login],
    ["display_name", (u) => u.display_name],
    ["affiliation", (u) => affName(u.affiliation_id)],
    ["numbers", (u) => u.numbers.map((n) => el("span", { class: "row" }, n, " ",
      el("button", { type: "button", class: "secondary", "aria-label": `${t("remove")} ${n}`,
        onclick: () => userAction(u, "DELETE", `/users/${u.id}/numbers/${encodeURIComponent(n)}`) }, "×")))],
    ["status", (u) => u.status],
    ["actions", (u) => el("div", { class: "row" },
      u.status === "restricted"
        ? el("button", { type: "button", class: "secondary", onclick: () => userAction(u, "PATCH", `/users/${u.id}`, { status: "active" }) }, t("unrestrict"))
        : el("button", { type: "button", class: "secondary", onclick: () => userAction(u, "PATCH", `/users/${u.id}`, { status: "restricted" }) }, t("restrict")),
      el("button", { type: "button", class: "danger", onclick: () => userAction(u, "POST", `/users/${u.id}/revoke`, undefined, "confirm_revoke") }, t("revoke")))],
  ]));
}

async function loadDevices() {
  const devices = await api("GET", "/devices");
  $("devices").replaceChildren(table(devices, [
    ["name", (d) => d.name],
    ["affiliation", (d) => affName(d.affiliation_id)],
    ["accounts", (d) => d.accounts.map((a) => a.number || JSON.stringify(a)).join(", ")],
    ["note", (d) => d.note],
  ]));
}

function tokyo(date, endOfDay) {
  if (!date) return "";
  const start = new Date(`${date}T00:00:00+09:00`);
  if (endOfDay) start.setUTCDate(start.getUTCDate() + 1);
  return start.toISOString();
}

function query(values, extra = {}) {
  const params = new URLSearchParams();
  for (const key of ["booth", "number", "direction"]) if (values[key]) params.set(key, values[key]);
  if (values.from) params.set("from", tokyo(values.from, false));
  if (values.to) params.set("to", tokyo(values.to, true));
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return params.toString();
}

async function searchRecordings(values) {
  const rows = await api("GET", `/recordings?${query(values)}`);
  $("recordings").replaceChildren(table(rows, [
    ["when", (r) => fmtTime(r.started_at)],
    ["booth", (r) => r.booth],
    ["peer", (r) => (r.direction === "inbound" ? r.caller : r.callee)],
    ["talk", (r) => fmtDuration(r.duration)],
    ["actions", (r) => el("div", { class: "row" },
      el("button", { type: "button", class: "secondary", dataset: { recording: String(r.id) }, onclick: () => {
        const audio = $("playback");
        audio.hidden = false;
        audio.src = `/api/v1/recordings/${r.id}/audio`;
        audio.play().catch(() => {});
      } }, t("play")),
      el("a", { href: `/api/v1/recordings/${r.id}/audio`, download: `${r.call_ref}.wav` }, t("download")))],
  ]));
}

async function searchCdrs(values) {
  $("cdr-csv").href = `/api/v1/cdrs.csv?${query(values)}`;
  const rows = await api("GET", `/cdrs?${query(values)}`);
  $("cdrs").replaceChildren(table(rows, [
    ["when", (r) => fmtTime(r.setup_at)],
    ["booth", (r) => r.booth],
    ["direction", (r) => r.direction],
    ["peer", (r) => (r.direction === "inbound" ? r.caller : r.callee)],
    ["talk", (r) => fmtDuration(r.talk_seconds || 0)],
    ["result", (r) => `${r.status}${r.reason ? ` (${r.reason})` : ""}`],
  ]));
}

async function loadAudit() {
  const rows = await api("GET", "/audit?limit=200");
  $("audit").replaceChildren(table(rows, [
    ["when", (r) => fmtTime(r.at)], ["actor", (r) => r.actor], ["action", (r) => r.action],
    ["target", (r) => r.target], ["outcome", (r) => r.outcome], ["source", (r) => r.source],
  ]));
}

const loaders = {
  board: async () => {}, users: loadUsers, affiliations: loadAffiliations, devices: loadDevices,
  recordings: () => searchRecordings({}), cdrs: () => searchCdrs({}), audit: loadAudit,
};

function split(text) {
  return (text || "").split(/[,、\s]+/).map((s) => s.trim()).filter(Boolean);
}

async function start() {
  $("login-form").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${app.me.login}@${app.me.domain}`;
  await loadAffiliations();
  const select = setupTabs($("tabs"), (name) => loaders[name]().catch((err) => {
    $("banner").replaceChildren(el("p", { class: "notice bad", role: "alert" }, err.message));
  }));
  select($("tabs").querySelector("[data-tab=board]"));
  connectLive();
}

function setup() {
  setupLangToggle($("lang"), () => {});
  whenLoggedOut(() => location.reload());
  bindForm($("login-form"), async (values) => {
    const session = await api("POST", "/login", { login: values.login.trim(), password: values.password });
    if (!["admin", "subadmin"].includes(session.role)) {
      await api("POST", "/logout");
      throw Object.assign(new Error(t(session.role === "user" ? "user_role_here" : "wrong_role")), { field: "login" });
    }
    app.me = session;
    $("login-password").value = "";
    await start();
  });
  bindForm($("user-form"), async (values, form) => {
    const created = await api("POST", "/users", {
      login: values.login, display_name: values.display_name || "",
      password: values.password || null,
      affiliation_id: values.affiliation_id ? Number(values.affiliation_id) : null,
      numbers: split(values.numbers),
    });
    form.reset();
    $("user-created").replaceChildren(created.password
      ? el("span", {}, `${created.identity.login}: ${t("generated_password")} `, el("span", { class: "secret" }, created.password))
      : t("done"));
    await loadUsers();
  });
  bindForm($("number-form"), async (values, form) => {
    await api("POST", `/users/${values.user}/numbers`, { number: values.number });
    form.reset();
    await loadUsers();
  });
  bindForm($("aff-form"), async (values, form) => {
    const policy = {
      outbound_allowed: Boolean(values.outbound_allowed),
      recordings_allowed: Boolean(values.recordings_allowed),
      allowed_prefixes: split(values.allowed_prefixes),
      max_concurrent_calls: values.max_concurrent_calls ? Number(values.max_concurrent_calls) : null,
    };
    if (values.id) {
      const body = { policy };
      if (values.name) body.name = values.name;
      await api("PATCH", `/affiliations/${values.id}`, body);
    } else {
      await api("POST", "/affiliations", { name: values.name, policy });
    }
    form.reset();
    await loadAffiliations();
  });
  $("a-id").addEventListener("change", () => {
    const aff = app.affiliations.find((a) => String(a.id) === $("a-id").value);
    const form = $("aff-form");
    form.elements.name.value = aff ? aff.name : "";
    form.elements.outbound_allowed.checked = aff ? aff.policy.outbound_allowed : true;
    form.elements.recordings_allowed.checked = aff ? aff.policy.recordings_allowed : true;
    form.elements.allowed_prefixes.value = aff ? aff.policy.allowed_prefixes.join(", ") : "";
    form.elements.max_concurrent_calls.value = aff && aff.policy.max_concurrent_calls != null ? aff.policy.max_concurrent_calls : "";
  });
  bindForm($("device-form"), async (values, form) => {
    await api("POST", "/devices", {
      name: values.name, note: values.note || "", numbers: split(values.numbers),
      affiliation_id: values.affiliation_id ? Number(values.affiliation_id) : null,
    });
    form.reset();
    await loadDevices();
  });
  bindForm($("rec-form"), searchRecordings);
  bindForm($("cdr-form"), searchCdrs);
  $("logout").addEventListener("click", async () => {
    app.live = null;
    await api("POST", "/logout").catch(() => {});
    location.reload();
  });
  applyI18n();
}

setup();

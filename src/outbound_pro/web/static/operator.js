// Operator console: the contract lifecycle (apply, approve with the admin credentials shown
// once, refuse, suspend, restrict, reinstate, terminate), outages and invoices.

import {
  addText, api, applyI18n, bindForm, el, fmtTime, setupLangToggle, setupTabs, t, table,
  whenLoggedOut,
} from "/static/common.js";

addText({
  operator_title: ["運用コンソール", "Operator console"],
  tab_contracts: ["契約", "Contracts"], tab_outages: ["障害", "Outages"], tab_invoices: ["請求書", "Invoices"],
  contract_action: ["契約の操作", "Act on a contract"], contract: ["契約", "Contract"], action: ["操作", "Action"],
  approve: ["承認", "Approve"], refuse: ["却下", "Refuse"], suspend: ["利用停止", "Suspend"], restrict: ["利用制限", "Restrict"],
  reinstate: ["再開", "Reinstate"], terminate: ["解約", "Terminate"], admin_login: ["管理者ID（承認時）", "Admin ID (on approval)"],
  reason: ["理由", "Reason"], emergency: ["緊急（事前通知なし）", "Emergency (no prior notice)"],
  end_date: ["終了日（解約時）", "End date (termination)"], run: ["実行", "Run"], apply: ["申込みの登録", "Record an application"],
  corp_name: ["法人名", "Company name"], email: ["通知先メール", "Notice e-mail"], domain: ["SIPドメイン", "SIP domain"],
  start_date: ["開始日", "Start date"], status: ["状態", "Status"], applied: ["申込日", "Applied"], id: ["番号", "No."],
  recognised: ["障害認識（日本時間）", "Recognised (Japan time)"], restored: ["復旧（日本時間）", "Restored (Japan time)"],
  note: ["メモ", "Note"], month: ["対象月", "Month"], issue_date: ["請求日", "Issue date"], issue: ["発行", "Issue"],
  number: ["請求書番号", "Number"], kind: ["種別", "Kind"], total: ["合計（円）", "Total (yen)"], due: ["支払期日", "Due"],
  view: ["表示", "View"],
  issued_title: ["管理者IDを発行しました。パスワードはこの一度だけ表示されます。控えてから閉じてください。",
    "Admin ID issued. The password is shown only this once: note it before closing."],
  close: ["閉じる", "Close"], admin_url: ["管理画面URL", "Admin URL"], outage_days: ["減額対象日数", "Credit days"],
});

const $ = (id) => document.getElementById(id);
let contracts = [];

async function loadContracts() {
  contracts = await api("GET", "/contracts");
  const label = (c) => `${c.id} ${c.name} (${c.domain}) — ${c.status}`;
  for (const id of ["x-contract", "o-contract"]) {
    $(id).replaceChildren(...contracts.map((c) => el("option", { value: String(c.id) }, label(c))));
  }
  $("contracts").replaceChildren(table(contracts, [
    ["id", (c) => c.id], ["corp_name", (c) => c.name], ["domain", (c) => c.domain],
    ["status", (c) => el("span", { dataset: { contractStatus: c.status, domain: c.domain } }, c.status)],
    ["applied", (c) => fmtTime(c.applied_at)],
  ]));
}

function showIssued(cred) {
  const close = el("button", { type: "button", onclick: () => $("issued").replaceChildren() }, t("close"));
  $("issued").replaceChildren(el("div", { class: "notice ok", role: "alert" },
    el("p", {}, t("issued_title")),
    el("p", {}, `${t("admin_login")}: `, el("span", { class: "secret", id: "issued-login" }, `${cred.login}@${cred.domain}`)),
    el("p", {}, `${t("password")}: `, el("span", { class: "secret", id: "issued-password" }, cred.password)),
    el("p", {}, `${t("admin_url")}: `, cred.admin_url),
    close));
  close.focus();
}

async function act(values) {
  const id = values.contract;
  const reason = values.reason || "";
  const action = values.action;
  if (action === "approve") {
    showIssued(await api("POST", `/contracts/${id}/approve`, { admin_login: values.admin_login || "admin" }));
  } else if (action === "terminate") {
    await api("POST", `/contracts/${id}/terminate`, { end_date: values.end_date || null, reason });
  } else if (action === "refuse") {
    await api("POST", `/contracts/${id}/refuse`, { reason });
  } else {
    await api("POST", `/contracts/${id}/${action}`, { reason, emergency: Boolean(values.emergency) });
  }
  await loadContracts();
}

async function loadInvoices(values = {}) {
  const q = values.month ? `?month=${values.month}` : "";
  const rows = await api("GET", `/billing/invoices${q}`);
  $("invoices").replaceChildren(table(rows, [
    ["number", (r) => r.number], ["kind", (r) => r.kind], ["contract", (r) => r.contract_id],
    ["month", (r) => r.month], ["issue_date", (r) => r.issue_date], ["due", (r) => r.due_date],
    ["total", (r) => r.total.toLocaleString("ja-JP")],
    ["view", (r) => el("a", { href: `/api/v1/billing/invoices/${encodeURIComponent(r.number)}?format=html`, target: "_blank", rel: "noopener" }, t("view"))],
  ]));
}

const loaders = { contracts: loadContracts, outages: loadContracts, invoices: () => loadInvoices() };

function setup() {
  setupLangToggle($("lang"), () => {});
  whenLoggedOut(() => location.reload());
  bindForm($("login-form"), async (values) => {
    const session = await api("POST", "/login", { login: values.login.trim(), password: values.password });
    if (session.role !== "operator") {
      await api("POST", "/logout");
      throw Object.assign(new Error(t("wrong_role")), { field: "login" });
    }
    $("login-password").value = "";
    $("login-form").hidden = true;
    $("console").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = session.login;
    const select = setupTabs($("tabs"), (name) => loaders[name]().catch((err) => {
      $("banner").replaceChildren(el("p", { class: "notice bad", role: "alert" }, err.message));
    }));
    select($("tabs").querySelector("[data-tab=contracts]"));
  });
  bindForm($("action-form"), act);
  bindForm($("apply-form"), async (values, form) => {
    await api("POST", "/contracts", {
      name: values.name, email: values.email, domain: values.domain, start_date: values.start_date || null,
    });
    form.reset();
    await loadContracts();
  });
  bindForm($("outage-form"), async (values, form) => {
    const result = await api("POST", "/billing/outages", {
      contract_id: Number(values.contract_id),
      recognised: values.recognised ? `${values.recognised}:00+09:00` : "",
      restored: values.restored ? `${values.restored}:00+09:00` : "",
      note: values.note || "",
    });
    form.reset();
    $("outage-result").textContent = `${t("done")} ${JSON.stringify(result)}`;
  });
  bindForm($("invoice-form"), loadInvoices);
  bindForm($("issue-form"), async (values) => {
    await api("POST", "/billing/issue", { month: values.month, issue_date: values.issue_date });
    await loadInvoices({ month: values.month });
  });
  $("logout").addEventListener("click", async () => {
    await api("POST", "/logout").catch(() => {});
    location.reload();
  });
  applyI18n();
}

setup();

// Shared by the three pages: UI text in Japanese (default) and English, the /api/v1 client,
// and forms that put the server's error next to the field it names.

const TEXT = { ja: {}, en: {} };
let lang = localStorage.getItem("op-lang") === "en" ? "en" : "ja";

/** Add one page's UI text: {key: [ja, en]}. */
export function addText(entries) {
  for (const [key, [ja, en]] of Object.entries(entries)) {
    TEXT.ja[key] = ja;
    TEXT.en[key] = en;
  }
}

addText({
  lang_toggle: ["English", "日本語"],
  login: ["ログイン", "Log in"],
  logout: ["ログアウト", "Log out"],
  login_id: ["ID（ID@ドメイン）", "User ID (id@domain)"],
  operator_login: ["オペレーターID", "Operator ID"],
  password: ["パスワード", "Password"],
  save: ["保存", "Save"],
  add: ["追加", "Add"],
  remove: ["削除", "Remove"],
  search: ["検索", "Search"],
  none: ["なし", "None"],
  error_network: ["サーバーに接続できません。", "Cannot reach the server."],
  error_session: ["ログインし直してください。", "Please log in again."],
  wrong_role: ["このページではこのIDは使えません。", "This ID cannot use this page."],
  play: ["再生", "Play"],
  download: ["ダウンロード", "Download"],
  done: ["完了しました。", "Done."],
});

export function t(key) {
  return TEXT[lang][key] ?? TEXT.en[key] ?? key;
}

export function currentLang() {
  return lang;
}

/** Replace the text of every [data-i18n] element (and [data-i18n-label] aria-labels). */
export function applyI18n(root = document) {
  document.documentElement.lang = lang;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
}

export function setupLangToggle(button, onChange) {
  button.addEventListener("click", () => {
    lang = lang === "ja" ? "en" : "ja";
    localStorage.setItem("op-lang", lang);
    applyI18n();
    if (onChange) onChange();
  });
  applyI18n();
}

/** An API error: HTTP status plus the server's {error, message, field}. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.error || "";
    this.field = body.field || null;
  }
}

let onUnauthenticated = null;
export function whenLoggedOut(handler) {
  onUnauthenticated = handler;
}

/** Call /api/v1 with the session cookie; JSON in and out; throws ApiError. */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, { error: "network", message: t("error_network") });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: "bad_response", message: text };
  }
  if (!response.ok) {
    const err = new ApiError(response.status, data || {});
    if (response.status === 401 && path !== "/login" && onUnauthenticated) onUnauthenticated(err);
    throw err;
  }
  return data;
}

/** Create an element; children are nodes or strings (always text, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fieldFor(form, name) {
  if (!name) return null;
  const candidates = [name, name.replace(/\[\d+\]/g, ""), name.split(/[.[]/)[0]];
  for (const candidate of candidates) {
    const input = form.querySelector(`[name="${CSS.escape(candidate)}"]`);
    if (input) return input;
  }
  return null;
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll(".field-error, .form-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

/** Put *err* next to the field it names (or at the form's top) and focus that field. */
export function showError(form, err) {
  const input = err && err.field ? fieldFor(form, err.field) : null;
  if (input) {
    let slot = input.parentElement.querySelector(".field-error");
    if (!slot) {
      slot = el("span", { class: "field-error", role: "alert", id: `${input.name}-error` });
      input.insertAdjacentElement("afterend", slot);
    }
    slot.textContent = err.message;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", slot.id);
    input.focus();
    return;
  }
  let slot = form.querySelector(".form-error");
  if (!slot) {
    slot = el("p", { class: "form-error", role: "alert" });
    form.prepend(slot);
  }
  slot.textContent = err.message;
}

/** Submit handler: clears errors, gives the handler the form's values, shows what fails. */
export function bindForm(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await handler(Object.fromEntries(new FormData(form).entries()), form);
    } catch (err) {
      showError(form, err);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

export function fmtTime(value) {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toLocaleString(lang === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo" });
}

export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.slice(-2)}:${ss}` : `${mm}:${ss}`;
}

/** A table from rows and [header key, cell function] columns. */
export function table(rows, columns, caption) {
  return el(
    "table",
    {},
    caption ? el("caption", {}, caption) : null,
    el("thead", {}, el("tr", {}, columns.map(([key]) => el("th", { scope: "col" }, t(key))))),
    el(
      "tbody",
      {},
      rows.map((row) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row))))),
    ),
  );
}

/** Tabs with arrow-key navigation (WAI-ARIA tabs pattern). */
export function setupTabs(tablist, onSelect) {
  const tabs = [...tablist.querySelectorAll("[role=tab]")];
  const select = (tab) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    onSelect(tab.dataset.tab);
  };
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  });
  return select;
}

// Japanese number check for the dial box, the same rules as accounts/numbers.py, so a number
// the server would refuse is caught before a call is attempted. Returns {national} or {error}.

const SEPARATORS = /[\s\-‐‑‒–—―−ーｰ.()]/g;
const REFUSED = {
  "020": "jp_020", "060": "jp_060", "0570": "jp_0570", "0170": "jp_other",
  "0180": "jp_other", "0990": "jp_0990", "0910": "jp_other",
};

export function checkJapaneseNumber(input) {
  let s = input.normalize("NFKC").trim().replace("(0)", "").replace(SEPARATORS, "");
  if (!s) return { error: "jp_empty" };
  if (s.startsWith("+81")) s = `0${s.slice(3)}`;
  else if (s.startsWith("0081")) s = `0${s.slice(4)}`;
  else if (s.startsWith("01081")) s = `0${s.slice(5)}`;
  else if (s.startsWith("+")) return { error: "jp_foreign" };
  if (!/^\d+$/.test(s)) return { error: "jp_digits" };
  if (/^1\d\d$/.test(s)) return { error: "jp_special" };
  if (!s.startsWith("0") || s.startsWith("00")) return { error: "jp_prefix" };
  for (const [prefix, key] of Object.entries(REFUSED)) if (s.startsWith(prefix)) return { error: key };
  const eleven = /^0(50|70|80|90|800)/.test(s);
  if (s.startsWith("0120") && s.length !== 10) return { error: "jp_length" };
  if (eleven && s.length !== 11) return { error: "jp_length" };
  if (!eleven && !s.startsWith("0120") && s.length !== 10) return { error: "jp_length" };
  return { national: s };
}

export const NUMBER_TEXT = {
  jp_empty: ["番号を入力してください。", "Enter a number."],
  jp_foreign: ["国際電話はかけられません（日本の番号のみ）。", "Only Japanese numbers can be called."],
  jp_digits: ["数字とハイフンだけを使ってください。", "Use digits and hyphens only."],
  jp_special: ["110・119などの特番には発信できません。", "Special numbers such as 110 or 119 cannot be dialled."],
  jp_prefix: ["0から始まる日本の番号を入力してください。", "Enter a Japanese number starting with 0."],
  jp_length: ["桁数が正しくありません（固定10桁、携帯・050は11桁）。", "Wrong length (10 digits for fixed lines, 11 for mobile and 050)."],
  jp_020: ["020番号には発信できません。", "020 numbers cannot be called."],
  jp_060: ["060番号は割り当てがありません。", "060 numbers are not assigned."],
  jp_0570: ["0570（ナビダイヤル）には発信できません。", "0570 (navi dial) numbers cannot be called."],
  jp_0990: ["0990（有料情報）には発信できません。", "0990 premium numbers cannot be called."],
  jp_other: ["この番号には発信できません。", "This number cannot be called."],
};

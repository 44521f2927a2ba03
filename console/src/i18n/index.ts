import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import ko from "./ko";
import en from "./en";
import * as builder from "./builder";
import * as library from "./library";
import * as resources from "./resources";
import * as admin from "./admin";
import * as runs from "./runs";
import * as training from "./training";

// each screen area keeps its own labels in its own file; their top-level keys do not overlap
const AREAS = [builder, library, resources, admin, runs, training];

export const LANGUAGES = ["ko", "en"] as const;
export type Language = (typeof LANGUAGES)[number];
const STORAGE_KEY = "avatar.language";

function saved(): Language {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    if (value === "en" || value === "ko") return value;
  } catch {
    /* no storage (private mode): Korean */
  }
  return "ko";
}

void i18n.use(initReactI18next).init({
  resources: {
    ko: { translation: Object.assign({}, ko, ...AREAS.map((area) => area.ko)) },
    en: { translation: Object.assign({}, en, ...AREAS.map((area) => area.en)) },
  },
  lng: saved(),
  fallbackLng: "ko",
  interpolation: { escapeValue: false }, // React escapes
  returnNull: false,
  showSupportNotice: false,
});

i18n.on("languageChanged", (language) => {
  document.documentElement.lang = language;
  try {
    localStorage.setItem(STORAGE_KEY, language);
  } catch {
    /* not kept: fine */
  }
});

export default i18n;

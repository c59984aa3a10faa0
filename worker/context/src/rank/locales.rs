//! Locale files named by language code: "Improve hungarian localization" is fixed in
//! `src/locale/hu.js`, "Arabic locales: meridiem is reversed" in `src/locale/ar-*.js`. The
//! issue names the language in English, the file by its ISO 639-1 code, so neither the
//! file-name signal nor BM25 can connect them. Date, i18n and UI libraries keep one file per
//! locale under a folder with one of a few names ([`LOCALE_DIRS`]).

/// Folders that hold one file per locale.
pub const LOCALE_DIRS: &[&str] = &[
    "locale",
    "locales",
    "i18n",
    "l10n",
    "lang",
    "langs",
    "languages",
    "translations",
];

/// English language names (and adjectives) with their ISO 639-1 codes.
const LANGUAGES: &[(&str, &str)] = &[
    ("afrikaans", "af"),
    ("albanian", "sq"),
    ("arabic", "ar"),
    ("armenian", "hy"),
    ("azerbaijani", "az"),
    ("basque", "eu"),
    ("belarusian", "be"),
    ("bengali", "bn"),
    ("bosnian", "bs"),
    ("bulgarian", "bg"),
    ("catalan", "ca"),
    ("chinese", "zh"),
    ("croatian", "hr"),
    ("czech", "cs"),
    ("danish", "da"),
    ("dutch", "nl"),
    ("english", "en"),
    ("esperanto", "eo"),
    ("estonian", "et"),
    ("finnish", "fi"),
    ("french", "fr"),
    ("galician", "gl"),
    ("georgian", "ka"),
    ("german", "de"),
    ("greek", "el"),
    ("hebrew", "he"),
    ("hindi", "hi"),
    ("hungarian", "hu"),
    ("icelandic", "is"),
    ("indonesian", "id"),
    ("irish", "ga"),
    ("italian", "it"),
    ("japanese", "ja"),
    ("kazakh", "kk"),
    ("korean", "ko"),
    ("latvian", "lv"),
    ("lithuanian", "lt"),
    ("macedonian", "mk"),
    ("malay", "ms"),
    ("mongolian", "mn"),
    ("nepali", "ne"),
    ("norwegian", "nb"),
    ("persian", "fa"),
    ("polish", "pl"),
    ("portuguese", "pt"),
    ("romanian", "ro"),
    ("russian", "ru"),
    ("serbian", "sr"),
    ("slovak", "sk"),
    ("slovenian", "sl"),
    ("spanish", "es"),
    ("swahili", "sw"),
    ("swedish", "sv"),
    ("tamil", "ta"),
    ("thai", "th"),
    ("turkish", "tr"),
    ("ukrainian", "uk"),
    ("urdu", "ur"),
    ("uzbek", "uz"),
    ("vietnamese", "vi"),
    ("welsh", "cy"),
];

/// The ISO code of an English language name (lowercase), if it is one.
pub fn code_of_language(word: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, code)| *code)
}

/// The language code a locale file stands for: `src/locale/ar-dz.js` → `ar`,
/// `locales/pt_BR.json` → `pt`; `None` outside a locale folder.
pub fn locale_code_of(path: &str) -> Option<String> {
    let mut parts = path.rsplit('/');
    let name = parts.next()?;
    let in_locale_dir = parts.any(|d| LOCALE_DIRS.contains(&d.to_ascii_lowercase().as_str()));
    if !in_locale_dir {
        return None;
    }
    let stem = name.split('.').next()?;
    let code = stem.split(['-', '_']).next()?.to_ascii_lowercase();
    (2..=3).contains(&code.len()).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_files_and_language_names() {
        assert_eq!(locale_code_of("src/locale/hu.js").as_deref(), Some("hu"));
        assert_eq!(locale_code_of("src/locale/ar-dz.js").as_deref(), Some("ar"));
        assert_eq!(
            locale_code_of("config/locales/pt_BR.yml").as_deref(),
            Some("pt")
        );
        assert_eq!(locale_code_of("src/plugin/hu.js"), None);
        assert_eq!(locale_code_of("src/locale/index.js"), None);
        assert_eq!(code_of_language("hungarian"), Some("hu"));
        assert_eq!(code_of_language("swedish"), Some("sv"));
        assert_eq!(code_of_language("hungry"), None);
    }
}

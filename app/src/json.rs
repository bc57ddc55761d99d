//! JSON decoding for the first download. In the browser through its own parser
//! (`JSON.parse`, then serde-wasm-bindgen walks the result); elsewhere through
//! serde_json. serde_json's parser, its number printing and its per-type decoders are
//! about a fifth of the wasm the first page needs; the lazily loaded pages still use it.
//!
//! The two read JSON alike but for one thing: object keys are strings, and serde_json
//! reads a map keyed by numbers (`BTreeMap<i64, _>`) from them where serde-wasm-bindgen
//! refuses. Types with such maps are decoded with serde_json (`http::fetch_serde`).

use serde::de::DeserializeOwned;

/// `text` decoded as `T`; the error says why, as a sentence fragment.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    #[cfg(feature = "hydrate")]
    {
        let value = js_sys::JSON::parse(text).map_err(|_| "not JSON".to_string())?;
        serde_wasm_bindgen::from_value(value).map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "hydrate"))]
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::JSON::stringify(&wasm_bindgen::JsValue::from_str(s))
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_quoted_and_escaped_and_text_decodes() {
        assert_eq!(super::string("a \"b\"\n"), r#""a \"b\"\n""#);
        assert_eq!(super::from_str::<Vec<u32>>("[1, 2]"), Ok(vec![1, 2]));
        assert!(super::from_str::<Vec<u32>>("[1,").is_err());
    }
}

//! Which [`Console`] and [`Operations`] this environment uses: the server's, from Leptos
//! context, while rendering; the `/api/v1` client in the browser. Apart from the traits
//! in `console` so that the HTTP client, which implements them, is not imported back.

use crate::console::{Console, Operations};
#[cfg(feature = "ssr")]
use crate::console::{ServerConsole, ServerOperations};
use std::sync::Arc;

/// The operations for the current environment (see [`console`]).
pub fn operations() -> Arc<dyn Operations> {
    #[cfg(feature = "ssr")]
    {
        leptos::prelude::use_context::<ServerOperations>()
            .map(|c| c.0)
            .expect("the server provides Operations to every rendered page")
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        Arc::new(crate::http::HttpConsole)
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        panic!("the app crate needs its `ssr` or `hydrate` feature to reach the operations")
    }
}

/// The console for the current environment (see the module docs).
pub fn console() -> Arc<dyn Console> {
    #[cfg(feature = "ssr")]
    {
        leptos::prelude::use_context::<ServerConsole>()
            .map(|c| c.0)
            .expect("the server provides a Console to every rendered page")
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        Arc::new(crate::http::HttpConsole)
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        panic!("the app crate needs its `ssr` or `hydrate` feature to reach a console")
    }
}

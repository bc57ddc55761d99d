//! Log search across every gateway instance (issue 6). So far: the query language.

pub mod query;

//! Gatewarden's server: configuration, HTTP (API and server-rendered pages), auth,
//! the health service and the fleet backends. `main.rs` is a thin shell over
//! [`startup::Application`], which the integration tests start on port 0.

pub mod accounts;
pub mod actions;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod chores;
pub mod config;
pub mod console;
pub mod db;
pub mod dns;
pub mod error;
pub mod files;
pub mod fleet;
pub mod health;
pub mod http;
pub mod incident_keys;
pub mod incidents;
pub mod limits;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod params;
pub mod probe;
pub mod replicas;
pub mod rng;
pub mod startup;
pub mod state;

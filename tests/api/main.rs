//! Integration tests: one binary, a real server per test on port 0, fresh databases
//! (SQLite and PostgreSQL), the simulated fleet with its clock stopped.

mod support;

mod actions;
mod approvals;
mod assets;
mod audit;
mod auth;
mod cli;
mod dependencies;
mod dns;
mod docs;
mod gateways;
mod hostile;
mod incidents;
mod input;
mod kube;
mod ledger;
mod live;
mod logs;
mod metrics;
mod openapi;
mod processes;
mod prometheus;
mod replicas;
mod roles;
mod sso;
mod ui;
mod users;

//! End-to-end tests: each starts the real `nexent` binary on a random loopback port with a temporary
//! data dir and speaks HTTP to it. One test binary; the modules read as a table of contents.

mod agent;
mod base;
mod cli;
mod config_sync;
mod conversation;
mod cpu_kernels;
mod durability;
mod faults;
mod file_management;
mod formats;
mod hostile_engines;
mod hostile_files;
mod hostile_http;
mod ingest;
mod knowledge;
mod mcp;
mod models;
mod multilingual;
mod nexent_client;
mod openai;
mod proxy;
mod s3;
mod scale_out;
mod security;
mod seed_examples;
mod seed_routes;
mod speculative;
mod ui;
mod voice;
mod watch;

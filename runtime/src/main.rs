//! `runtime`: serve AsyncAPI-described WebSocket APIs (see `runtime --help`, docs/runtime.md).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use portico_runtime::config::{Config, LogFormat};
use portico_runtime::relay::CloseCommand;
use portico_runtime::reload::{self, Source};
use portico_runtime::tls_listener::ServerCertificate;
use portico_runtime::{admin, server, Gateway};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    raise_fd_limit(config.max_connections);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run(config));
    // A compile may still be running on a blocking thread (a huge or hostile spec folder): the
    // drain is over, so do not wait for it — dropping the runtime would.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTICO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a file, journald or a container log are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.with_target(false).init(),
    }
}

/// Raises the soft limit on open files to the hard limit: each proxied connection holds two
/// descriptors, and the common soft default of 1024 would cap the gateway near 500 connections.
/// Warns when `--max-connections` × 2 still does not fit.
fn raise_fd_limit(max_connections: usize) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            warn!(error = %e, "cannot read or raise the open-file limit");
            return;
        }
    };
    let needed = (max_connections as u64).saturating_mul(2);
    if needed > limit {
        warn!(
            open_file_limit = limit,
            max_connections,
            "--max-connections × 2 exceeds the open-file limit: connections beyond about {} will be refused with 503",
            limit / 2
        );
    } else {
        info!(open_file_limit = limit, "open-file limit");
    }
}

async fn run(config: Config) -> ExitCode {
    let source = match &config.plan {
        Some(plan) => Source::PlanFile(plan.clone()),
        None => Source::Specs {
            paths: config.specs.clone(),
            options: portico_compiler::Options {
                context: config.context.clone(),
                allow_roots: config.allow_roots.clone(),
                ..Default::default()
            },
        },
    };
    let watch = config.watch;
    let gateway = match Gateway::new(config) {
        Ok(g) => g,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    match load_verifiers(&gateway).await {
        Ok(()) => {}
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    }
    // Compiling and rendering the docs is CPU work: `load_blocking` runs it off the async threads.
    let loaded = match reload::load_blocking(&gateway, &source).await {
        Ok(loaded) => loaded,
        Err(problems) => {
            let problems = portico_runtime::redact::redact_userinfo(&problems.text);
            error!("cannot serve: the specs have errors\n{problems}");
            return ExitCode::from(1);
        }
    };
    let files_read = loaded.files_read.clone();
    // Startup is the first reload: the same apply, from no plan.
    reload::apply(&gateway, loaded);
    let served = gateway.served.load_full().expect("applied");
    let plan = &served.plan;
    let listener = match TcpListener::bind(gateway.config.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {}: {e}", gateway.config.listen);
            return ExitCode::from(2);
        }
    };
    // The wss:// listener exists only with a certificate; a pair that does not load stops startup.
    let tls = match gateway.config.tls_files() {
        None => None,
        Some((cert, key)) => {
            let certificate = match ServerCertificate::load(cert, key) {
                Ok(c) => c,
                Err(why) => {
                    error!("cannot serve TLS: {why}");
                    return ExitCode::from(2);
                }
            };
            match TcpListener::bind(gateway.config.tls_listen).await {
                Ok(l) => Some((l, certificate)),
                Err(e) => {
                    error!("cannot listen on {} (TLS): {e}", gateway.config.tls_listen);
                    return ExitCode::from(2);
                }
            }
        }
    };
    let admin_listener = match TcpListener::bind(gateway.config.admin_listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(
                "cannot listen on {} (admin): {e}",
                gateway.config.admin_listen
            );
            return ExitCode::from(2);
        }
    };
    info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        tls_listen = %tls.as_ref().and_then(|(l, _)| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        admin = %admin_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        hash = %plan.hash,
        apis = plan.apis.len(),
        "serving"
    );
    for api in &plan.apis {
        info!(api = %api.title, version = %api.version, context = %api.context, lifecycle = api.lifecycle.as_str(), routes = api.routes.len(), "api");
    }
    // The watch is set up before the admin listener answers /readyz.
    if watch {
        match portico_runtime::watcher::watch(gateway.clone(), source.clone(), &files_read) {
            Ok(reloading) => {
                tokio::spawn(reloading);
            }
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    tokio::spawn(admin::serve(gateway.clone(), admin_listener));
    if let Some((tls_listener, certificate)) = tls {
        certificate.clone().watch();
        let mut shutting_down = gateway.shutting_down.subscribe();
        let stop = async move {
            let _ = shutting_down.wait_for(|stopping| *stopping).await;
        };
        tokio::spawn(server::serve(
            gateway.clone(),
            tls_listener,
            Some(certificate),
            stop,
        ));
    }
    server::serve(gateway.clone(), listener, None, shutdown_signal()).await;

    // Drain: refuse new handshakes, ask every connection to close, wait up to the drain timeout.
    let _ = gateway.shutting_down.send(true);
    let open = gateway.connections.count();
    info!(open, "shutting down: closing connections");
    gateway
        .connections
        .close_where(|_, _| Some(CloseCommand::new(1001, "server shutting down")));
    let deadline = Instant::now() + gateway.config.drain_timeout();
    while gateway.connections.count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = gateway.connections.count();
    if left > 0 {
        info!(left, "drain timeout: dropping the remaining connections");
    } else {
        info!("all connections closed");
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Reads `--config` and sets up the credentials' verifiers and the throttling tiers before any
/// plan is served.
async fn load_verifiers(gateway: &Gateway) -> Result<(), String> {
    let settings = portico_runtime::settings::Settings::load(gateway.config.config.as_deref())?;
    let mut auth = settings.auth()?;
    auth.allow_unauthenticated |= gateway.config.allow_unauthenticated;
    let verifiers =
        portico_runtime::policy::auth::Verifiers::from_settings(&auth, gateway.tls.clone()).await?;
    if verifiers.allow_unauthenticated {
        tracing::warn!("--allow-unauthenticated: routes that require a credential are served without checking one");
    }
    let verifiers = std::sync::Arc::new(verifiers);
    // Live connections follow their credential: expiry and revocation close them with 4001.
    tokio::spawn(portico_runtime::policy::live_credentials::follow(
        gateway.connections.clone(),
        verifiers.clone(),
    ));
    gateway.verifiers.store(verifiers);
    let throttling = settings
        .section::<portico_runtime::policy::throttle::ThrottlingConfig>("throttling")?
        .unwrap_or_default();
    gateway.throttling.store(std::sync::Arc::new(throttling));
    Ok(())
}

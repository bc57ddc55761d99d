//! The `gatewarden` binary.

use app::dto::NewUser;
use clap::Parser;
use server::accounts::store::{self as users, FirstAdmin};
use server::config::{AuditCommand, Cli, Command, LogFormat, ServeArgs, UserCommand};
use server::error::AppError;
use server::startup::{Application, Settings, StartupError};
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap prints its own message and exits 2 on bad flags.
    let cli = Cli::parse();
    let format = match &cli.command {
        None => cli.serve.log_format,
        Some(Command::Serve(args)) => args.log_format,
        Some(_) => LogFormat::Text,
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // kube's client logs every failed connection as an error; the watch that made it
        // logs the failure once per change of reason, with the watch it belongs to.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn,kube_client::client::builder=off".into()),
        );
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatewarden: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(Command::Audit(AuditCommand::Verify { file, key_file, checkpoint_file })) = &cli.command {
        return verify_export(file, key_file.as_deref(), checkpoint_file.as_deref());
    }
    let result = runtime.block_on(async {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(*args).await,
            Some(Command::User(UserCommand::Add { name, role, database_url, audit_key_file })) => {
                add_user(name, role, database_url, audit_key_file).await
            }
            Some(Command::Audit(_)) => unreachable!("handled before the runtime"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatewarden: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let settings = Settings::from_args(args)?;
    let secret_file = settings.admin_password_file.clone();
    let app = Application::build(settings).await?;
    match &app.first_admin {
        // On a terminal a person reads it; anywhere else the output may end up in a log
        // pipeline (a pod's logs), so it goes to a file only its owner can read.
        FirstAdmin::Generated(password) if std::io::stdout().is_terminal() => {
            println!("Created user 'admin' with password: {password}");
            println!("(shown once; set GATEWARDEN_ADMIN_PASSWORD on first start to choose it)");
        }
        // Readable and writable by the owner only (0600), replaced atomically.
        FirstAdmin::Generated(password) => match server::files::replace_private(&secret_file, &format!("{password}\n"))
        {
            Ok(()) => println!(
                "Created user 'admin'; its password is in {} (readable only by this user: delete it once you \
                 have signed in)",
                secret_file.display()
            ),
            Err(e) => println!(
                "Created user 'admin', but its password could not be written to {}: {e}. It is not printed here, \
                 where logs may keep it: start on a fresh database with GATEWARDEN_ADMIN_PASSWORD set, or \
                 --admin-password-file pointing somewhere writable",
                secret_file.display()
            ),
        },
        FirstAdmin::FromEnvironment => {
            println!("Created user 'admin' with the password from GATEWARDEN_ADMIN_PASSWORD")
        }
        FirstAdmin::NotNeeded => {}
    }
    let addr = app.local_addr();
    println!("Gatewarden is serving on http://{addr}");
    app.run_until(shutdown_signal()).await.map_err(|e| StartupError::Other(format!("server error: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `gatewarden audit verify FILE`: prints what was checked and every problem found.
fn verify_export(file: &Path, key_file: Option<&Path>, checkpoint_file: Option<&Path>) -> ExitCode {
    use server::audit::{AuditKey, checkpoint};
    let fail = |message: String| {
        eprintln!("gatewarden: {message}");
        ExitCode::from(2)
    };
    let key = match key_file.map(AuditKey::load).transpose() {
        Ok(key) => key,
        Err(e) => return fail(e.to_string()),
    };
    let checkpoint = match (checkpoint_file, &key) {
        (Some(_), None) => return fail("--checkpoint-file needs --key-file (the checkpoint is signed with it)".into()),
        (Some(path), Some(key)) => match checkpoint::read(path, key) {
            Ok(Some(body)) => Some(body),
            Ok(None) => return fail(format!("no checkpoint file at {}", path.display())),
            Err(problem) => return fail(problem),
        },
        (None, _) => None,
    };
    let lines: Box<dyn Iterator<Item = std::io::Result<String>>> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock().lines())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::new(f).lines()),
            Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
        }
    };
    let result = match server::audit::verify_lines(lines, key.clone(), checkpoint.clone()) {
        Ok(result) => result,
        Err(e) => return fail(e),
    };
    println!("{} entries checked; head {}", result.entries, result.head_hash);
    match (&key, result.signed_from) {
        (None, _) => println!("signatures: not checked (no --key-file)"),
        (Some(key), Some(id)) => println!("signatures: every entry from #{id} carries audit key {}", key.id()),
        (Some(key), None) => println!("signatures: no entry carries audit key {}", key.id()),
    }
    match &checkpoint {
        Some(c) => println!("checkpoint: entry #{} ({} breaks recorded at start-ups)", c.head_id, c.breaks.len()),
        None => println!("checkpoint: not compared (no --checkpoint-file): a cut at the end cannot be seen"),
    }
    for p in &result.problems {
        println!("FAILED {} check at #{}: {}", p.check, p.id, p.message);
    }
    if result.ok {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn add_user(
    name: String,
    role: app::dto::Role,
    database_url: String,
    audit_key_file: Option<std::path::PathBuf>,
) -> Result<(), StartupError> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| StartupError::Config(format!("cannot read the password from standard input: {e}")))?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(StartupError::Config("no password on standard input".into()));
    }
    let reason = format!(
        "added on the command line (gatewarden user add) by {}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let new = NewUser { username: name, password, role, reason };
    users::validate(&new).map_err(|e| StartupError::Config(e.to_string()))?;
    let db = server::db::connect(&database_url).await?;
    // On the record first, signed with the console's key, like an admin's creation in the
    // console (no record, no account).
    let (key, _) = server::startup::audit_key(&database_url, audit_key_file.as_deref(), None)?;
    let dialect = server::db::dialect(&database_url).expect("checked by connect");
    let ledger = server::audit::Ledger::new(db.clone(), dialect)
        .seal(key, None)
        .await
        .map_err(|e| StartupError::Other(format!("opening the audit ledger failed: {e:?}")))?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let mut entry = server::audit::NewEntry::new(
        server::audit::Actor {
            name: format!("cli:{operator}"),
            role: "cli".into(),
            addr: "local".into(),
            user_agent: "gatewarden user add".into(),
            request_id: String::new(),
        },
        server::audit::Kind::UserChange,
        server::audit::Outcome::Succeeded,
    );
    entry.action = "create-user".into();
    entry.target = new.username.clone();
    entry.params = serde_json::json!({ "role": new.role });
    entry.reason = new.reason.clone();
    match ledger.recorded(entry, "no account was created", || users::create(&db, new)).await {
        Ok((_, u)) => {
            println!("Added user '{}' with role {}", u.username, u.role);
            Ok(())
        }
        Err(e) => match e {
            AppError::Validation { .. } | AppError::Conflict(_) => Err(StartupError::Config(e.to_string())),
            e => Err(StartupError::Other(format!("{e:?}"))),
        },
    }
}

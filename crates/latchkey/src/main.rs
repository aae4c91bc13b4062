//! The `latchkey` binary: `serve`, `migrate`, and the operator CLI.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use latchkey::app::{Server, shutdown_signal};
use latchkey::cli;
use latchkey::config::{LogFormat, ServeArgs, StoreArgs};

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Multi-tenant OpenID Connect provider")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the admin API, every active app's issuer and hosted pages.
    Serve(ServeArgs),
    /// Apply store migrations (control plane, then every app's identity store) and exit.
    Migrate(StoreArgs),
    /// Manage apps.
    App {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::AppCmd,
    },
    /// Manage OAuth clients of an app.
    Client {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::ClientCmd,
    },
    /// Manage an app's signing keys.
    Keys {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::KeysCmd,
    },
    /// Manage operator tokens of the admin API (create, list, revoke).
    Token {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::TokenCmd,
    },
    /// Manage an app's end users (list, show, invite, approve, sign out, erase).
    User {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::UserCmd,
    },
    /// Manage an app's roles and who holds them.
    Role {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::RoleCmd,
    },
    /// Manage an app's organizations and their members.
    Org {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::OrgCmd,
    },
    /// Manage an app's API resources (token audiences).
    Resource {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        cmd: cli::ResourceCmd,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only on a terminal (and not under NO_COLOR): escape codes in a log file or a log
    // collector are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Human => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Migrate(args) => {
                init_logs(LogFormat::Human);
                latchkey::app::migrate_all(&args.validate()?).await
            }
            Command::App { remote, cmd } => cli::app(&remote, cmd).await,
            Command::Client { remote, cmd } => cli::client(&remote, cmd).await,
            Command::Keys { remote, cmd } => cli::keys(&remote, cmd).await,
            Command::User { remote, cmd } => cli::user(&remote, cmd).await,
            Command::Token { remote, cmd } => cli::token(&remote, cmd).await,
            Command::Role { remote, cmd } => cli::role(&remote, cmd).await,
            Command::Org { remote, cmd } => cli::org(&remote, cmd).await,
            Command::Resource { remote, cmd } => cli::resource(&remote, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the cause chain on one line, never a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.validate()?;
    init_logs(config.log_format);
    let bind = config.bind;
    let public = config.public_base();
    // Bind first: a port that is taken must fail the start before anything is generated or
    // stored (a master key, the initial admin token).
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let server = Server::builder(config).build().await?;
    tracing::info!(bind = %bind, public_url = %public, "latchkey serving");
    server.serve(listener, shutdown_signal()).await
}

//! The `edgeplane` command line. Parses flags, sets up logging, and maps
//! outcomes to exit codes; the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use edgeplane::bootstrap::{self, BootstrapParams};
use edgeplane::source::watch::Debounce;

#[derive(Parser)]
#[command(
    name = "edgeplane",
    version,
    about = "An xDS control plane for Envoy that serves Gloo Edge-style manifests"
)]
struct Cli {
    /// Log as JSON lines instead of text (verbosity: RUST_LOG, default info).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch a manifests directory and serve it to Envoy over ADS.
    Serve {
        /// Directory of Gloo manifests (*.yaml, *.yml; read recursively, never written).
        #[arg(long, env = "EDGEPLANE_CONFIG_DIR")]
        config_dir: PathBuf,
        /// Address of the xDS (ADS, gRPC) server; Gloo's port is 9977.
        #[arg(long, default_value = "127.0.0.1:9977", env = "EDGEPLANE_XDS_ADDRESS")]
        xds_address: SocketAddr,
        /// Address of the admin HTTP server (/healthz, /readyz, /status, /metrics, /config_dump); off when unset.
        #[arg(long, env = "EDGEPLANE_ADMIN_ADDRESS")]
        admin_address: Option<SocketAddr>,
        /// Also re-read the directory this often (e.g. `2s`), for mounts that deliver no file events.
        #[arg(long, env = "EDGEPLANE_POLL_INTERVAL", value_parser = parse_duration)]
        poll_interval: Option<Duration>,
        /// Serve xDS (ADS and the status API) over TLS with this certificate
        /// chain (PEM, leaf first); needs --xds-tls-key.
        #[arg(long, env = "EDGEPLANE_XDS_TLS_CERT", value_name = "PEM")]
        xds_tls_cert: Option<PathBuf>,
        /// Private key of --xds-tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long, env = "EDGEPLANE_XDS_TLS_KEY", value_name = "PEM")]
        xds_tls_key: Option<PathBuf>,
        /// Require a client certificate signed by this CA (PEM) on the xDS
        /// port (mutual TLS); connections without one fail the handshake.
        #[arg(long, env = "EDGEPLANE_XDS_TLS_CLIENT_CA", value_name = "PEM")]
        xds_tls_client_ca: Option<PathBuf>,
    },
    /// Check a manifests directory; exit 0 when valid, 1 when not, 2 when it could not run.
    Validate {
        /// Directory of Gloo manifests.
        dir: PathBuf,
        /// `text` (compiler-style, on stderr) or `json` (on stdout).
        #[arg(long, default_value = "text")]
        output: String,
    },
    /// Print the Envoy resources generated from a manifests directory, as proto3 JSON
    /// (as Envoy's /config_dump shows them); exit 1 when the manifests are invalid.
    Translate {
        /// Directory of Gloo manifests.
        dir: PathBuf,
        /// Only this proxy: `<namespace>~<proxyName>`, or a proxy name that is unambiguous.
        #[arg(long)]
        proxy: Option<String>,
    },
    /// Print each listener's effective routing table: domains, matcher,
    /// destination, WebSocket state and why, and each route's source line
    /// (exit 1 when the manifests are invalid).
    Routes {
        /// Directory of Gloo manifests.
        dir: PathBuf,
        /// Only this proxy: `<namespace>~<proxyName>`, or a proxy name that is unambiguous.
        #[arg(long)]
        proxy: Option<String>,
        /// `text` (one table per listener) or `json`.
        #[arg(long, default_value = "text")]
        output: String,
    },
    /// Print an Envoy bootstrap that connects to `edgeplane serve`.
    Bootstrap {
        /// Envoy node id.
        #[arg(long)]
        node_id: String,
        /// Proxy name, as in a Gateway's proxyNames.
        #[arg(long, default_value = "gateway-proxy")]
        proxy_name: String,
        /// Namespace of the Gateway(s) feeding that proxy.
        #[arg(long, default_value = "gloo-system")]
        namespace: String,
        /// edgeplane's xDS address as Envoy reaches it (host:port; host may be a DNS name).
        /// Repeat it for replicas serving the same manifests, most preferred first:
        /// Envoy uses the first that accepts connections and fails over to the next.
        #[arg(long, default_value = "127.0.0.1:9977", num_args = 1, action = clap::ArgAction::Append)]
        xds_address: Vec<String>,
        /// Envoy admin port.
        #[arg(long, default_value_t = 19000)]
        admin_port: u16,
        /// Envoy admin bind address.
        #[arg(long, default_value = "127.0.0.1")]
        admin_address: String,
        /// Use incremental (delta) ADS (`api_type: DELTA_GRPC`): only changed
        /// resources are sent. The default is state of the world (`GRPC`).
        #[arg(long)]
        delta: bool,
        /// Connect to xDS over TLS, trusting this CA (PEM file as Envoy sees
        /// it) for edgeplane's certificate.
        #[arg(long, value_name = "PEM")]
        xds_tls_ca: Option<String>,
        /// Client certificate Envoy presents (mutual TLS); needs --xds-tls-key.
        #[arg(long, value_name = "PEM", requires_all = ["xds_tls_ca", "xds_tls_key"])]
        xds_tls_cert: Option<String>,
        /// Private key of --xds-tls-cert.
        #[arg(long, value_name = "PEM", requires_all = ["xds_tls_ca", "xds_tls_cert"])]
        xds_tls_key: Option<String>,
        /// SNI, and the DNS name edgeplane's certificate must carry; default:
        /// the host of --xds-address when it is a DNS name (for an IP address,
        /// no SNI and the certificate must carry that IP).
        #[arg(long, value_name = "NAME", requires = "xds_tls_ca")]
        xds_tls_sni: Option<String>,
    },
    /// Run the demo backend: plain HTTP answers and a WebSocket echo on one port.
    EchoBackend {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Name put in every HTTP answer, to tell backends apart.
        #[arg(long, default_value = "echo")]
        name: String,
    },
    /// Show every resource's status (Accepted, Warning, Rejected) and the
    /// connected Envoys' ACKs and NACKs, like `glooctl get`.
    Status {
        /// edgeplane's xDS/status gRPC address.
        #[arg(long, default_value = "127.0.0.1:9977", env = "EDGEPLANE_XDS_ADDRESS")]
        server: String,
        /// Keep printing as the status changes.
        #[arg(long)]
        watch: bool,
        /// `table` or `json`.
        #[arg(long, default_value = "table")]
        output: String,
        /// Connect over TLS, trusting this CA (PEM) for the server's certificate.
        #[arg(long, env = "EDGEPLANE_TLS_CA", value_name = "PEM")]
        tls_ca: Option<PathBuf>,
        /// Client certificate (PEM) for a server that requires one; needs --tls-key.
        #[arg(long, env = "EDGEPLANE_TLS_CERT", value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
        tls_cert: Option<PathBuf>,
        /// Private key of --tls-cert (PEM).
        #[arg(long, env = "EDGEPLANE_TLS_KEY", value_name = "PEM", requires_all = ["tls_ca", "tls_cert"])]
        tls_key: Option<PathBuf>,
    },
    /// Write JSON Schemas of the manifests (one per kind, and `all.json`)
    /// for editors; prints `all.json` to stdout without --out.
    Schema {
        /// Directory to write the schema files into.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the list of supported and refused Gloo fields as Markdown
        /// (docs/FIELDS.md) instead.
        #[arg(long, conflicts_with = "out")]
        fields: bool,
    },
    /// Send one WebSocket message and print the reply.
    WsClient {
        /// e.g. ws://127.0.0.1:8080/ws
        url: String,
        #[arg(default_value = "hello")]
        message: String,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = edgeplane::model::Duration::parse(s)?;
    Ok(Duration::new(
        d.seconds.max(0) as u64,
        d.nanos.max(0) as u32,
    ))
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve {
            config_dir,
            xds_address,
            admin_address,
            poll_interval,
            xds_tls_cert,
            xds_tls_key,
            xds_tls_client_ca,
        } => {
            let xds_tls = edgeplane::xds_tls::XdsTlsFiles {
                cert: xds_tls_cert,
                key: xds_tls_key,
                client_ca: xds_tls_client_ca,
            }
            .load()?;
            let cfg = edgeplane::server::ServeConfig {
                config_dir,
                xds_address,
                admin_address,
                debounce: Debounce {
                    poll: poll_interval,
                    ..Debounce::default()
                },
                xds_tls,
            };
            runtime()?.block_on(edgeplane::server::serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { dir, output } => {
            let json = match output.as_str() {
                "json" => true,
                "text" => false,
                other => anyhow::bail!("--output {other}: expected text or json"),
            };
            if !dir.is_dir() {
                anyhow::bail!("{} is not a directory", dir.display());
            }
            let load = edgeplane::pipeline::load_dir(&dir);
            if json {
                let errors = load.has_errors();
                let diags: Vec<serde_json::Value> = load
                    .diagnostics
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "severity": d.severity.to_string(),
                            "file": d.pos.file.display().to_string(),
                            "line": d.pos.line,
                            "column": d.pos.column,
                            "kind": d.resource.as_ref().map(|r| r.kind.clone()),
                            "namespace": d.resource.as_ref().map(|r| r.namespace.clone()),
                            "name": d.resource.as_ref().map(|r| r.name.clone()),
                            "message": d.message,
                            "hint": d.hint,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": !errors,
                        "files": load.files.len(),
                        "diagnostics": diags,
                    })
                );
                return Ok(if errors {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                });
            }
            if !load.diagnostics.is_empty() {
                eprintln!("{}\n", load.render_diagnostics());
            }
            let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = load.diagnostics.len() - errors;
            if errors > 0 {
                eprintln!(
                    "{} file(s): {errors} error(s), {warnings} warning(s): invalid",
                    load.files.len()
                );
                Ok(ExitCode::from(1))
            } else {
                eprintln!("{} file(s): {warnings} warning(s): valid", load.files.len());
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Schema { out, fields } => {
            if fields {
                print!("{}", edgeplane::schema::fields_markdown());
            } else {
                edgeplane::schema::run(out.as_deref())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Translate { dir, proxy } => {
            if !dir.is_dir() {
                anyhow::bail!("{} is not a directory", dir.display());
            }
            let load = edgeplane::pipeline::load_dir(&dir);
            if !load.diagnostics.is_empty() {
                eprintln!("{}\n", load.render_diagnostics());
            }
            let Some(output) = load.output.as_ref().filter(|_| !load.has_errors()) else {
                let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
                eprintln!("{} file(s): {errors} error(s): invalid", load.files.len());
                return Ok(ExitCode::from(1));
            };
            let json = edgeplane::json::resources_json(output, proxy.as_deref())?;
            let text = serde_json::to_string_pretty(&json).context("cannot print the JSON")?;
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Routes { dir, proxy, output } => {
            edgeplane::routes_cli::run(&dir, proxy.as_deref(), &output)
        }
        Command::Bootstrap {
            node_id,
            proxy_name,
            namespace,
            xds_address,
            admin_port,
            admin_address,
            delta,
            xds_tls_ca,
            xds_tls_cert,
            xds_tls_key,
            xds_tls_sni,
        } => {
            let xds_tls = xds_tls_ca.map(|ca| bootstrap::XdsClientTls {
                ca,
                cert: xds_tls_cert,
                key: xds_tls_key,
                sni: xds_tls_sni,
            });
            let mut xds_addresses = xds_address.into_iter();
            let xds_address = xds_addresses.next().unwrap_or_default();
            let yaml = bootstrap::render(&BootstrapParams {
                node_id,
                proxy_name,
                namespace,
                xds_address,
                xds_failover_addresses: xds_addresses.collect(),
                admin_address,
                admin_port,
                delta,
                xds_tls,
            })?;
            print!("{yaml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::EchoBackend { listen, name } => {
            runtime()?.block_on(async move {
                let l = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                tracing::info!(%listen, %name, "echo backend listening (HTTP and WebSocket)");
                edgeplane::demo::serve_echo(l, name).await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            server,
            watch,
            output,
            tls_ca,
            tls_cert,
            tls_key,
        } => {
            let tls = tls_ca.map(|ca| edgeplane::xds_tls::ClientTlsFiles {
                ca,
                cert: tls_cert,
                key: tls_key,
                server_name: None,
            });
            let json = match output.as_str() {
                "json" => true,
                "table" => false,
                other => anyhow::bail!("--output {other}: expected table or json"),
            };
            let print = |s: &edgeplane::api::GetStatusResponse| {
                if json {
                    println!("{}", status_json(s));
                } else {
                    println!("{}", edgeplane::status_cli::render_table(s));
                }
            };
            runtime()?.block_on(async {
                if watch {
                    edgeplane::status_cli::watch_with(&server, tls.as_ref(), print).await
                } else {
                    edgeplane::status_cli::get_with(&server, tls.as_ref())
                        .await
                        .map(|s| print(&s))
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::WsClient { url, message } => {
            let reply = runtime()?.block_on(edgeplane::demo::ws_round_trip(&url, &message))?;
            println!("{reply}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status_json(s: &edgeplane::api::GetStatusResponse) -> String {
    let resources = edgeplane::api::resources_json(&s.resources);
    serde_json::json!({ "loads": s.loads, "resources": resources }).to_string()
}

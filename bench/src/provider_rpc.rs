//! The provider's start-to-handshake time and per-RPC overhead, measured
//! from this (release-built) driver against the release provider binary, so
//! that the client's own encoding is optimised too. The RPCs use
//! `secretbridge_test_object`, which does no network IO: they show what the
//! plugin layer costs (msgpack, schema checks, gRPC), nothing else.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use terraform_provider_secretbridge::plugin::proto::go_plugin::{Empty, grpc_controller_client::GrpcControllerClient};
use terraform_provider_secretbridge::plugin::proto::tfplugin6::{self as pb, DynamicValue, provider_client::ProviderClient};
use terraform_provider_secretbridge::plugin::schema::block_value_type;
use terraform_provider_secretbridge::plugin::serve::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use terraform_provider_secretbridge::plugin::value::{self, Type, Value};
use terraform_provider_secretbridge::resources::test_object::{DIR_ENV, ENABLE_ENV};
use tonic::transport::Channel;

use crate::error::BenchError;
use crate::report::Row;
use crate::stats::percentile;

/// What the RPC figures are compared with.
pub const ANCHOR_RPC: &str = "tf-provider 0.2.2: ~40 ms per RPC";
/// What the start figure is compared with.
pub const ANCHOR_START: &str = "Terraform waits for this on every plugin start";
/// Provider starts timed for the handshake figure.
const STARTS: usize = 20;
/// Sequential calls per timed RPC (a quarter of it for the large schema).
const ROUNDS: usize = 2000;
/// Untimed calls first, to warm the connection and the allocators.
const WARM_UP: usize = 20;

/// Runs both measurements against `binary`; the rows measured before a
/// failure are kept.
pub async fn run(binary: &Path, scratch: &Path) -> (Vec<Row>, Option<BenchError>) {
    let mut rows = Vec::new();
    let failure = match measure(binary, scratch, &mut rows).await {
        Ok(()) => None,
        Err(reason) => Some(BenchError::ProviderRpc { reason }),
    };
    (rows, failure)
}

async fn measure(binary: &Path, scratch: &Path, rows: &mut Vec<Row>) -> Result<(), String> {
    let mut starts = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let started = Started::spawn(binary, scratch)?;
        starts.push(started.handshake);
        started.stop().await?;
    }
    let (p50, max) = (percentile(&starts, 0.5).unwrap_or_default(), percentile(&starts, 1.0).unwrap_or_default());
    println!("provider start to handshake: p50 {p50:?}, max {max:?} ({STARTS} starts)");
    rows.push(Row::new(
        "provider",
        "start to handshake p50",
        format!("{:.1} ms", ms(p50)),
        format!("{ANCHOR_START} ({STARTS} starts of the release binary; max {:.1} ms)", ms(max)),
    ));

    let started = Started::spawn(binary, scratch)?;
    let result = time_rpcs(&started, rows).await;
    started.stop().await?;
    result
}

async fn time_rpcs(started: &Started, rows: &mut Vec<Row>) -> Result<(), String> {
    let client = ProviderClient::new(started.channel.clone());
    let schema = client
        .clone()
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .map_err(|status| format!("GetProviderSchema: {status}"))?
        .into_inner();
    let block = schema
        .resource_schemas
        .get("secretbridge_test_object")
        .and_then(|s| s.block.clone())
        .ok_or("the provider served no secretbridge_test_object (is SECRETBRIDGE_PROVIDER_TEST_RESOURCES honoured?)")?;
    let ty = block_value_type(&block).map_err(|e| e.to_string())?;
    let config = test_object_config(&ty)?;
    let empty = encode(&Value::Null, &ty)?;

    let mut timer = RpcTimer { rows };
    timer
        .time("GetProviderSchema", ROUNDS / 4, || {
            let mut client = client.clone();
            async move { client.get_provider_schema(pb::get_provider_schema::Request {}).await.map(drop) }
        })
        .await?;
    timer
        .time("ValidateResourceConfig", ROUNDS, || {
            let (mut client, config) = (client.clone(), config.clone());
            async move {
                let request = pb::validate_resource_config::Request {
                    type_name: "secretbridge_test_object".into(),
                    config: Some(config),
                    client_capabilities: None,
                };
                no_diagnostics(client.validate_resource_config(request).await?.into_inner().diagnostics)
            }
        })
        .await?;
    timer
        .time("PlanResourceChange", ROUNDS, || {
            let (mut client, config, empty) = (client.clone(), config.clone(), empty.clone());
            async move {
                let request = pb::plan_resource_change::Request {
                    type_name: "secretbridge_test_object".into(),
                    prior_state: Some(empty),
                    proposed_new_state: Some(config.clone()),
                    config: Some(config),
                    ..Default::default()
                };
                no_diagnostics(client.plan_resource_change(request).await?.into_inner().diagnostics)
            }
        })
        .await
}

/// A new object's config, every attribute Terraform would send present
/// (null unless set).
fn test_object_config(ty: &Type) -> Result<DynamicValue, String> {
    let Type::Object(attributes) = ty else {
        return Err(format!("secretbridge_test_object is not an object type: {ty:?}"));
    };
    let mut config: std::collections::BTreeMap<String, Value> = attributes.keys().map(|k| (k.clone(), Value::Null)).collect();
    let text = |v: &str| Value::String(v.to_owned());
    config.insert("name".into(), text("bench"));
    config.insert("content".into(), text("c"));
    config.insert("secret".into(), text("hunter2"));
    config.insert("owner".into(), Value::Map([("team".to_owned(), text("core")), ("email".to_owned(), Value::Null)].into()));
    encode(&Value::Map(config), ty)
}

fn encode(v: &Value, ty: &Type) -> Result<DynamicValue, String> {
    Ok(DynamicValue { msgpack: value::to_msgpack(v, ty).map_err(|e| format!("encoding the bench config: {e}"))?, json: Vec::new() })
}

/// An RPC that answered with diagnostics measured the wrong thing.
fn no_diagnostics(diagnostics: Vec<pb::Diagnostic>) -> Result<(), tonic::Status> {
    match diagnostics.first() {
        None => Ok(()),
        Some(d) => Err(tonic::Status::internal(format!("unexpected diagnostic: {}: {}", d.summary, d.detail))),
    }
}

struct RpcTimer<'a> {
    rows: &'a mut Vec<Row>,
}

impl RpcTimer<'_> {
    /// Times `rounds` sequential calls after a warm-up and adds the p50 row.
    async fn time<F, Fut>(&mut self, label: &str, rounds: usize, mut call: F) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), tonic::Status>>,
    {
        for _ in 0..WARM_UP {
            call().await.map_err(|status| format!("{label}: {status}"))?;
        }
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            call().await.map_err(|status| format!("{label}: {status}"))?;
            samples.push(start.elapsed());
        }
        let (p50, p99) = (percentile(&samples, 0.5).unwrap_or_default(), percentile(&samples, 0.99).unwrap_or_default());
        println!("provider RPC {label}: p50 {:.0} µs, p99 {:.0} µs ({rounds} calls)", us(p50), us(p99));
        self.rows.push(Row::new(
            "provider",
            format!("RPC {label} p50"),
            format!("{:.0} µs", us(p50)),
            format!("{ANCHOR_RPC} (p99 {:.0} µs over {rounds} sequential calls to the release binary)", us(p99)),
        ));
        Ok(())
    }
}

/// The provider binary started the way Terraform starts it, connected.
struct Started {
    child: Child,
    channel: Channel,
    handshake: Duration,
}

impl Started {
    /// Spawns the binary with the magic cookie and protocol 6 and times it
    /// up to its handshake line; without `PLUGIN_CLIENT_CERT` it serves
    /// plain gRPC on loopback.
    fn spawn(binary: &Path, scratch: &Path) -> Result<Started, String> {
        let start = Instant::now();
        let mut child = Command::new(binary)
            .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env_remove("PLUGIN_CLIENT_CERT")
            .env(ENABLE_ENV, "1")
            .env(DIR_ENV, scratch)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("reading the handshake: {e}"))?;
        let handshake = start.elapsed();
        let addr = line
            .trim_end()
            .split('|')
            .nth(3)
            .ok_or_else(|| format!("not a go-plugin handshake line: {line:?}"))?
            .to_owned();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("handshake address {addr}: {e}"))?
            .connect_lazy();
        Ok(Started { child, channel, handshake })
    }

    /// Asks the provider to shut down, as Terraform does, and waits for it.
    async fn stop(mut self) -> Result<(), String> {
        let asked = GrpcControllerClient::new(self.channel.clone()).shutdown(Empty {}).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("the provider did not exit after Shutdown ({asked:?})"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

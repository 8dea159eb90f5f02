//! Provider RPCs from an in-process gRPC client (plain TCP on loopback).

use std::time::Duration;

use terraform_provider_secretbridge::plugin::proto::go_plugin::{Empty, grpc_controller_client::GrpcControllerClient};
use terraform_provider_secretbridge::plugin::proto::tfplugin6::{
    self as pb, attribute_path::step::Selector, provider_client::ProviderClient,
};
use terraform_provider_secretbridge::plugin::serve::serve;
use terraform_provider_secretbridge::plugin::server::ProviderServer;
use terraform_provider_secretbridge::plugin::value::{Number, Type, Value};
use terraform_provider_secretbridge::resources::test_object::{TestObjectDataSource, TestObjectResource};
use tonic::transport::Channel;

use crate::support::{dv, obj, s, undv};

struct Running {
    client: ProviderClient<Channel>,
    channel: Channel,
    server: tokio::task::JoinHandle<()>,
    ty: Type,
    _dir: tempfile::TempDir,
    dir_path: std::path::PathBuf,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = ProviderServer::builder::<secretbridge_shared::terraform::ProviderConfig>()
        .expect("provider schema")
        .resource(TestObjectResource::in_dir(dir.path()))
        .expect("resource schema")
        .data_source(TestObjectDataSource::in_dir(dir.path()))
        .expect("data source schema")
        .build();
    let ty = object_type(&provider);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        serve(listener, None, provider).await.expect("serve");
    });
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    Running { client: ProviderClient::new(channel.clone()), channel, server, ty, dir_path: dir.path().to_owned(), _dir: dir }
}

/// The object type Terraform would derive from the returned schema.
fn object_type(provider: &ProviderServer) -> Type {
    let block = provider.schema_response().resource_schemas["secretbridge_test_object"].block.clone().expect("block");
    block_type(&block)
}

pub(crate) fn block_type(block: &pb::schema::Block) -> Type {
    terraform_provider_secretbridge::plugin::schema::block_value_type(block).expect("the served schema has valid types")
}

fn config(name: &str, content: &str) -> Value {
    obj(&[
        ("name", s(name)),
        ("content", s(content)),
        ("secret", s("hunter2")),
        ("owner", obj(&[("team", s("core"))])),
    ])
}

fn attr_path_names(p: &pb::AttributePath) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|st| match &st.selector {
            Some(Selector::AttributeName(n)) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn validation_errors_carry_attribute_paths() {
    let mut r = start().await;
    let resp = r
        .client
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: "secretbridge_test_object".into(),
            config: dv(&obj(&[("name", s("Bad_Name")), ("content", s("forbidden")), ("format", s("fancy"))]), &r.ty),
            client_capabilities: None,
        })
        .await
        .expect("rpc")
        .into_inner();
    let paths: Vec<Vec<String>> = resp.diagnostics.iter().filter_map(|d| d.attribute.as_ref()).map(attr_path_names).collect();
    assert!(paths.contains(&vec!["name".to_owned()]), "{:?}", resp.diagnostics);
    assert!(paths.contains(&vec!["format".to_owned()]), "{:?}", resp.diagnostics);
    for d in &resp.diagnostics {
        assert!(!d.detail.contains("backtrace") && !d.detail.contains("src/"), "no Rust internals: {}", d.detail);
    }
    // The typed validator runs only once the schema rules pass.
    let resp = r
        .client
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: "secretbridge_test_object".into(),
            config: dv(&obj(&[("name", s("ok")), ("content", s("forbidden"))]), &r.ty),
            client_capabilities: None,
        })
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(resp.diagnostics.len(), 1);
    assert_eq!(attr_path_names(resp.diagnostics[0].attribute.as_ref().expect("path")), ["content"]);
    r.server.abort();
}

#[tokio::test]
async fn plan_apply_read_import_lifecycle_over_grpc() {
    let mut r = start().await;
    let ty = r.ty.clone();
    let cfg = config("alpha", "v1");
    // Terraform's proposed new state for a create: config, computed attrs null.
    let plan = r
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "secretbridge_test_object".into(),
            prior_state: dv(&Value::Null, &ty),
            proposed_new_state: dv(&cfg, &ty),
            config: dv(&cfg, &ty),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let planned = undv(plan.planned_state, &ty);
    assert_eq!(planned.attr("id"), &Value::Unknown);
    assert_eq!(planned.attr("revision"), &Value::Unknown);
    assert_eq!(planned.attr("format"), &s("pretty"), "default applied");

    let applied = r
        .client
        .apply_resource_change(pb::apply_resource_change::Request {
            type_name: "secretbridge_test_object".into(),
            prior_state: dv(&Value::Null, &ty),
            planned_state: dv(&planned, &ty),
            config: dv(&cfg, &ty),
            ..Default::default()
        })
        .await
        .expect("apply")
        .into_inner();
    assert!(applied.diagnostics.is_empty(), "{:?}", applied.diagnostics);
    let state = undv(applied.new_state, &ty);
    assert_eq!(state.attr("id"), &s("alpha"));
    assert_eq!(state.attr("revision"), &Value::Number(Number::Int(1)));
    assert!(r.dir_path.join("alpha.json").exists());

    // Update of content: in place, revision unknown, id kept.
    let cfg2 = config("alpha", "v2");
    let mut proposed = cfg2.clone();
    if let Value::Map(m) = &mut proposed {
        m.insert("id".into(), state.attr("id").clone());
        m.insert("revision".into(), state.attr("revision").clone());
        m.insert("format".into(), s("pretty"));
    }
    let plan = r
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "secretbridge_test_object".into(),
            prior_state: dv(&state, &ty),
            proposed_new_state: dv(&proposed, &ty),
            config: dv(&cfg2, &ty),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    assert!(plan.requires_replace.is_empty());
    let planned2 = undv(plan.planned_state, &ty);
    assert_eq!(planned2.attr("id"), &s("alpha"));
    assert_eq!(planned2.attr("revision"), &Value::Unknown);

    // Rename: requires replace on `name`.
    let cfg3 = config("beta", "v2");
    let mut proposed3 = cfg3.clone();
    if let Value::Map(m) = &mut proposed3 {
        m.insert("id".into(), state.attr("id").clone());
        m.insert("revision".into(), state.attr("revision").clone());
        m.insert("format".into(), s("pretty"));
    }
    let plan = r
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "secretbridge_test_object".into(),
            prior_state: dv(&state, &ty),
            proposed_new_state: dv(&proposed3, &ty),
            config: dv(&cfg3, &ty),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    let replace: Vec<Vec<String>> = plan.requires_replace.iter().map(attr_path_names).collect();
    assert_eq!(replace, vec![vec!["name".to_owned()]]);

    // Read sees the file; after deleting it outside Terraform, read returns null (drift).
    let read = r
        .client
        .read_resource(pb::read_resource::Request {
            type_name: "secretbridge_test_object".into(),
            current_state: dv(&state, &ty),
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner();
    assert_eq!(undv(read.new_state, &ty), state);

    // The data source reads the same object by name.
    let data_schema = r
        .client
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .expect("schema")
        .into_inner()
        .data_source_schemas
        .remove("secretbridge_test_object")
        .expect("data source schema");
    let data_ty = block_type(data_schema.block.as_ref().expect("block"));
    let data_cfg = obj(&[("name", s("alpha"))]);
    let validated = r
        .client
        .validate_data_resource_config(pb::validate_data_resource_config::Request {
            type_name: "secretbridge_test_object".into(),
            config: dv(&data_cfg, &data_ty),
        })
        .await
        .expect("validate data")
        .into_inner();
    assert!(validated.diagnostics.is_empty(), "{:?}", validated.diagnostics);
    let data = r
        .client
        .read_data_source(pb::read_data_source::Request {
            type_name: "secretbridge_test_object".into(),
            config: dv(&data_cfg, &data_ty),
            ..Default::default()
        })
        .await
        .expect("read data")
        .into_inner();
    assert!(data.diagnostics.is_empty(), "{:?}", data.diagnostics);
    let data = undv(data.state, &data_ty);
    assert_eq!(data.attr("content"), &s("v1"));
    assert_eq!(data.attr("revision"), &Value::Number(Number::Int(1)));

    // Import by ID gives the same state.
    let imported = r
        .client
        .import_resource_state(pb::import_resource_state::Request {
            type_name: "secretbridge_test_object".into(),
            id: "alpha".into(),
            ..Default::default()
        })
        .await
        .expect("import")
        .into_inner();
    assert_eq!(imported.imported_resources.len(), 1);
    assert_eq!(undv(imported.imported_resources[0].state.clone(), &ty), state);

    std::fs::remove_file(r.dir_path.join("alpha.json")).expect("delete outside terraform");
    let read = r
        .client
        .read_resource(pb::read_resource::Request {
            type_name: "secretbridge_test_object".into(),
            current_state: dv(&state, &ty),
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner();
    assert_eq!(undv(read.new_state, &ty), Value::Null);

    // UpgradeResourceState from raw JSON at the current version.
    let raw = br#"{"name":"alpha","content":"v1","secret":null,"format":"pretty","labels":null,"owner":{"team":"core","email":null},"id":"alpha","revision":1}"#;
    let up = r
        .client
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: "secretbridge_test_object".into(),
            version: 0,
            raw_state: Some(pb::RawState { json: raw.to_vec(), flatmap: Default::default() }),
        })
        .await
        .expect("upgrade")
        .into_inner();
    assert!(up.diagnostics.is_empty(), "{:?}", up.diagnostics);
    assert_eq!(undv(up.upgraded_state, &ty).attr("revision"), &Value::Number(Number::Int(1)));
    // A version this provider never wrote is refused with a diagnostic.
    let up = r
        .client
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: "secretbridge_test_object".into(),
            version: 7,
            raw_state: Some(pb::RawState { json: raw.to_vec(), flatmap: Default::default() }),
        })
        .await
        .expect("upgrade")
        .into_inner();
    assert!(up.diagnostics[0].summary.contains("Unsupported state version"));
    r.server.abort();
}

#[tokio::test]
async fn metadata_functions_and_controller_shutdown() {
    let mut r = start().await;
    let meta = r.client.get_metadata(pb::get_metadata::Request {}).await.expect("metadata").into_inner();
    assert_eq!(meta.resources.len(), 1);
    assert_eq!(meta.data_sources.len(), 1);
    assert!(meta.server_capabilities.expect("caps").get_provider_schema_optional);
    let funcs = r.client.get_functions(pb::get_functions::Request {}).await.expect("functions").into_inner();
    assert!(funcs.functions.is_empty());
    let unknown = r
        .client
        .read_data_source(pb::read_data_source::Request { type_name: "secretbridge_nope".into(), ..Default::default() })
        .await
        .expect("rpc")
        .into_inner();
    assert!(unknown.diagnostics[0].summary.contains("Unknown data source"));

    GrpcControllerClient::new(r.channel.clone()).shutdown(Empty {}).await.expect("shutdown");
    // The server task ends by itself once asked to shut down.
    tokio::time::timeout(Duration::from_secs(60), &mut r.server).await.expect("server stops").expect("no panic");
}

#[tokio::test]
async fn provider_config_is_validated_with_paths_and_configured() {
    let mut r = start().await;
    let schema = r.client.get_provider_schema(pb::get_provider_schema::Request {}).await.expect("schema").into_inner();
    let provider_ty = block_type(schema.provider.expect("provider").block.as_ref().expect("block"));
    let bad = obj(&[("aws", obj(&[("region", s(""))]))]);
    let resp = r
        .client
        .validate_provider_config(pb::validate_provider_config::Request { config: dv(&bad, &provider_ty) })
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(resp.diagnostics.len(), 1, "{:?}", resp.diagnostics);
    assert_eq!(attr_path_names(resp.diagnostics[0].attribute.as_ref().expect("path")), ["aws", "region"]);

    let good = obj(&[("aws", obj(&[("region", s("eu-west-1")), ("endpoint", s("http://127.0.0.1:1"))]))]);
    let resp = r
        .client
        .configure_provider(pb::configure_provider::Request {
            terraform_version: "1.15.5".into(),
            config: dv(&good, &provider_ty),
            client_capabilities: None,
        })
        .await
        .expect("configure")
        .into_inner();
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    r.server.abort();
}

/// A resource whose create panics, standing in for a provider bug.
struct Buggy;

impl terraform_provider_secretbridge::plugin::resource::Resource for Buggy {
    type State = terraform_provider_secretbridge::resources::test_object::TestOwner;

    fn type_name(&self) -> &'static str {
        "secretbridge_buggy"
    }

    async fn create(
        &self,
        _: &terraform_provider_secretbridge::plugin::resource::ProviderContext,
        _: Self::State,
    ) -> Result<Self::State, terraform_provider_secretbridge::plugin::diag::Diagnostics> {
        panic!("index out of range in create")
    }

    async fn read(
        &self,
        _: &terraform_provider_secretbridge::plugin::resource::ProviderContext,
        current: Self::State,
    ) -> Result<Option<Self::State>, terraform_provider_secretbridge::plugin::diag::Diagnostics> {
        Ok(Some(current))
    }

    async fn update(
        &self,
        _: &terraform_provider_secretbridge::plugin::resource::ProviderContext,
        _: Self::State,
        planned: Self::State,
    ) -> Result<Self::State, terraform_provider_secretbridge::plugin::diag::Diagnostics> {
        Ok(planned)
    }

    async fn delete(
        &self,
        _: &terraform_provider_secretbridge::plugin::resource::ProviderContext,
        _: Self::State,
    ) -> Result<(), terraform_provider_secretbridge::plugin::diag::Diagnostics> {
        Ok(())
    }

    async fn import(
        &self,
        _: &terraform_provider_secretbridge::plugin::resource::ProviderContext,
        id: String,
    ) -> Result<Self::State, terraform_provider_secretbridge::plugin::diag::Diagnostics> {
        Ok(Self::State { team: id, email: None })
    }
}

#[tokio::test]
async fn a_panicking_resource_becomes_a_diagnostic_and_the_server_keeps_serving() {
    let provider = ProviderServer::builder::<secretbridge_shared::terraform::ProviderConfig>()
        .expect("provider schema")
        .resource(Buggy)
        .expect("resource schema")
        .build();
    let block = provider.schema_response().resource_schemas["secretbridge_buggy"].block.clone().expect("block");
    let ty = block_type(&block);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { serve(listener, None, provider).await });
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let mut client = ProviderClient::new(channel);
    let planned = obj(&[("team", s("core"))]);
    let resp = client
        .apply_resource_change(pb::apply_resource_change::Request {
            type_name: "secretbridge_buggy".into(),
            prior_state: dv(&Value::Null, &ty),
            planned_state: dv(&planned, &ty),
            config: dv(&planned, &ty),
            ..Default::default()
        })
        .await
        .expect("the RPC itself succeeds")
        .into_inner();
    assert_eq!(resp.diagnostics.len(), 1);
    assert_eq!(resp.diagnostics[0].summary, "The provider hit an internal error");
    assert!(resp.diagnostics[0].detail.starts_with("index out of range in create."), "{}", resp.diagnostics[0].detail);
    // Same connection, next call works.
    let imported = client
        .import_resource_state(pb::import_resource_state::Request { type_name: "secretbridge_buggy".into(), id: "x".into(), ..Default::default() })
        .await
        .expect("import")
        .into_inner();
    assert_eq!(imported.imported_resources.len(), 1);
    server.abort();
}

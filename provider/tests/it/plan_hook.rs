//! The async plan hook (`Resource::modify_plan`) and the per-process
//! registry of planned objects, over in-process gRPC.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use terraform_provider_secretbridge::planned::{PlannedStore, StoreProviderKind};
use terraform_provider_secretbridge::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use terraform_provider_secretbridge::plugin::proto::tfplugin6::{
    self as pb, provider_client::ProviderClient,
};
use terraform_provider_secretbridge::plugin::resource::{PlannedState, ProviderContext, Resource};
use terraform_provider_secretbridge::plugin::serve::serve;
use terraform_provider_secretbridge::plugin::server::ProviderServer;
use terraform_provider_secretbridge::plugin::value::{Type, Value};
use tonic::transport::Channel;

use crate::support::{dv, obj, s, undv};

/// A resource that records itself as a planned store and checks the store it names.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Hooked {
    /// Name.
    #[schemars(extend("x-terraform-requires-replace" = true))]
    name: String,
    /// Another hooked object that must be planned first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uses: Option<String>,
    /// The name upper-cased, computed at plan time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    shout: Option<String>,
    /// Computed by apply only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    id: Option<String>,
}

struct HookedResource;

impl Resource for HookedResource {
    type State = Hooked;

    fn type_name(&self) -> &'static str {
        "secretbridge_hooked"
    }

    async fn modify_plan(
        &self,
        ctx: &ProviderContext,
        _prior: Option<&Hooked>,
        planned: &mut PlannedState<'_, Hooked>,
    ) -> Diagnostics {
        let mut diags = Diagnostics::default();
        let Some(model) = planned.model() else {
            return diags;
        };
        let name = model.name.clone();
        ctx.planned.record_store(PlannedStore {
            namespace: Some("hooks".into()),
            name: name.clone(),
            provider: Some(StoreProviderKind::Aws),
            service_account: None,
        });
        match &model.uses {
            Some(other) if ctx.planned.secret_stores_named(other).is_empty() => {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root("uses"),
                    "Not planned",
                    format!("{name} uses {other}, which is not planned"),
                ));
            }
            Some(other) => diags.push(Diagnostic::warning(
                "Planned before",
                format!("{other} was planned before {name}"),
            )),
            None => {}
        }
        let shout = name.to_uppercase();
        let updated = Hooked {
            name: model.name.clone(),
            uses: model.uses.clone(),
            shout: Some(shout),
            id: None,
        };
        if let Err(d) = planned.set(updated) {
            diags.extend(d);
        }
        diags
    }

    async fn create(&self, _: &ProviderContext, planned: Hooked) -> Result<Hooked, Diagnostics> {
        Ok(planned)
    }
    async fn read(
        &self,
        _: &ProviderContext,
        current: Hooked,
    ) -> Result<Option<Hooked>, Diagnostics> {
        Ok(Some(current))
    }
    async fn update(
        &self,
        _: &ProviderContext,
        _: Hooked,
        planned: Hooked,
    ) -> Result<Hooked, Diagnostics> {
        Ok(planned)
    }
    async fn delete(&self, _: &ProviderContext, _: Hooked) -> Result<(), Diagnostics> {
        Ok(())
    }
    async fn import(&self, _: &ProviderContext, id: String) -> Result<Hooked, Diagnostics> {
        Ok(Hooked {
            name: id,
            uses: None,
            shout: None,
            id: None,
        })
    }
}

fn ty() -> Type {
    Type::Object(
        ["name", "uses", "shout", "id"]
            .into_iter()
            .map(|n| (n.to_owned(), Type::String))
            .collect(),
    )
}

fn config(name: Value, uses: Value) -> Value {
    obj(&[
        ("name", name),
        ("uses", uses),
        ("shout", Value::Null),
        ("id", Value::Null),
    ])
}

async fn plan(
    client: &mut ProviderClient<Channel>,
    prior: &Value,
    config: &Value,
) -> pb::plan_resource_change::Response {
    client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "secretbridge_hooked".into(),
            prior_state: dv(prior, &ty()),
            proposed_new_state: dv(config, &ty()),
            config: dv(config, &ty()),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner()
}

#[tokio::test]
async fn plan_hook_runs_once_configured_records_objects_and_keeps_unknowns() {
    let provider = ProviderServer::builder::<secretbridge_shared::terraform::ProviderConfig>()
        .expect("provider schema")
        .resource(HookedResource)
        .expect("resource schema")
        .build();
    let provider_ty = crate::rpc::block_type(
        provider
            .schema_response()
            .provider
            .as_ref()
            .and_then(|p| p.block.as_ref())
            .expect("provider block"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { serve(listener, None, provider).await });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = ProviderClient::new(channel);

    // Before ConfigureProvider the hook does not run: no check, no computed value.
    let unconfigured = plan(&mut client, &Value::Null, &config(s("b"), s("missing"))).await;
    assert!(
        unconfigured.diagnostics.is_empty(),
        "{:?}",
        unconfigured.diagnostics
    );
    assert_eq!(
        undv(unconfigured.planned_state, &ty()).attr("shout"),
        &Value::Unknown
    );

    let resp = client
        .configure_provider(pb::configure_provider::Request {
            terraform_version: "1.15.5".into(),
            config: dv(
                &obj(&[
                    ("aws", Value::Null),
                    ("gcp", Value::Null),
                    ("kubernetes", Value::Null),
                ]),
                &provider_ty,
            ),
            client_capabilities: None,
        })
        .await
        .expect("configure")
        .into_inner();
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);

    // A names nothing: the hook fills the computed value at plan time and
    // leaves the apply-time one unknown.
    let a = plan(&mut client, &Value::Null, &config(s("a"), Value::Null)).await;
    assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    let planned_a = undv(a.planned_state, &ty());
    assert_eq!(planned_a.attr("shout"), &s("A"));
    assert_eq!(
        planned_a.attr("id"),
        &Value::Unknown,
        "unknown stays unknown after set()"
    );

    // B uses A, planned earlier in this process: a warning rides along with the plan.
    let b = plan(&mut client, &Value::Null, &config(s("b"), s("a"))).await;
    assert_eq!(b.diagnostics.len(), 1, "{:?}", b.diagnostics);
    assert_eq!(
        b.diagnostics[0].severity,
        pb::diagnostic::Severity::Warning as i32
    );
    assert!(b.planned_state.is_some());

    // C uses something never planned: the plan fails, pointing at the attribute.
    let c = plan(&mut client, &Value::Null, &config(s("c"), s("zzz"))).await;
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    assert_eq!(
        c.diagnostics[0].severity,
        pb::diagnostic::Severity::Error as i32
    );
    assert!(
        c.diagnostics[0].detail.contains("c uses zzz"),
        "{}",
        c.diagnostics[0].detail
    );
    assert!(c.diagnostics[0].attribute.is_some());

    // Unknown name: no typed model, so nothing is recorded or computed; the
    // unknown values stay unknown.
    let d = plan(&mut client, &Value::Null, &config(Value::Unknown, s("zzz"))).await;
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    let planned_d = undv(d.planned_state, &ty());
    assert_eq!(planned_d.attr("name"), &Value::Unknown);
    assert_eq!(planned_d.attr("shout"), &Value::Unknown);

    // Destroy: the hook is not asked.
    let prior = obj(&[
        ("name", s("c")),
        ("uses", s("zzz")),
        ("shout", s("C")),
        ("id", s("c")),
    ]);
    let destroy = client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "secretbridge_hooked".into(),
            prior_state: dv(&prior, &ty()),
            proposed_new_state: dv(&Value::Null, &ty()),
            config: dv(&Value::Null, &ty()),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    assert!(destroy.diagnostics.is_empty(), "{:?}", destroy.diagnostics);
    server.abort();
}

//! The tfplugin6 `Provider` gRPC service over registered resources.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::FutureExt;
use tonic::{Request, Response, Status};

use super::diag::{Diagnostic, Diagnostics};
use super::proto::tfplugin6 as pb;
use super::proto::tfplugin6::provider_server::Provider;
use super::resource::{
    DataSource, DynDataSource, DynEphemeral, DynResource, EphemeralResource, ProviderContext, Registered, RegisteredDataSource,
    RegisteredEphemeral, Resource, validate_rules,
};
use super::schema::{GeneratedSchema, SchemaError, SchemaOptions, generate};
use super::value::{self, Type, Value};

/// A provider: its configuration schema and its resources.
pub struct ProviderServer {
    inner: Arc<Inner>,
}

impl Clone for ProviderServer {
    fn clone(&self) -> Self {
        ProviderServer { inner: Arc::clone(&self.inner) }
    }
}

struct Inner {
    provider_schema: GeneratedSchema,
    resources: BTreeMap<&'static str, Box<dyn DynResource>>,
    data_sources: BTreeMap<&'static str, Box<dyn DynDataSource>>,
    ephemerals: BTreeMap<&'static str, Box<dyn DynEphemeral>>,
    schema_response: pb::get_provider_schema::Response,
    ctx: RwLock<Arc<ProviderContext>>,
}

/// Builds a [`ProviderServer`].
pub struct ProviderBuilder {
    provider_schema: GeneratedSchema,
    resources: BTreeMap<&'static str, Box<dyn DynResource>>,
    data_sources: BTreeMap<&'static str, Box<dyn DynDataSource>>,
    ephemerals: BTreeMap<&'static str, Box<dyn DynEphemeral>>,
}

impl ProviderServer {
    /// Starts a provider whose `provider` block has the schema of `C`
    /// (top-level objects rendered as blocks: `aws { ... }`).
    pub fn builder<C: schemars::JsonSchema>() -> Result<ProviderBuilder, SchemaError> {
        let provider_schema = generate::<C>(0, SchemaOptions { top_level_objects_as_blocks: true })?;
        Ok(ProviderBuilder { provider_schema, resources: BTreeMap::new(), data_sources: BTreeMap::new(), ephemerals: BTreeMap::new() })
    }

    /// The GetProviderSchema answer (also used for the golden file).
    pub fn schema_response(&self) -> &pb::get_provider_schema::Response {
        &self.inner.schema_response
    }

    fn resource(&self, type_name: &str) -> Result<&dyn DynResource, Diagnostics> {
        self.inner.resources.get(type_name).map(|r| &**r).ok_or_else(|| {
            Diagnostic::error(
                "Unknown resource type",
                format!("this provider has no resource type {type_name:?}; check the resource name against the provider documentation."),
            )
            .into()
        })
    }

    fn data_source(&self, type_name: &str) -> Result<&dyn DynDataSource, Diagnostics> {
        self.inner.data_sources.get(type_name).map(|d| &**d).ok_or_else(|| unknown_data_source(type_name).into())
    }

    fn ephemeral(&self, type_name: &str) -> Result<&dyn DynEphemeral, Diagnostics> {
        self.inner.ephemerals.get(type_name).map(|e| &**e).ok_or_else(|| {
            Diagnostic::error(
                "Unknown ephemeral resource type",
                format!("this provider has no ephemeral resource {type_name:?}; check the name against the provider documentation."),
            )
            .into()
        })
    }

    fn ctx(&self) -> Arc<ProviderContext> {
        match self.inner.ctx.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ProviderBuilder {
    /// Registers a resource (its schema is generated here).
    pub fn resource<R: Resource>(mut self, resource: R) -> Result<ProviderBuilder, SchemaError> {
        let registered = Registered::new(resource)?;
        self.resources.insert(registered.type_name(), Box::new(registered));
        Ok(self)
    }

    /// Registers a data source (its schema is generated here).
    pub fn data_source<D: DataSource>(mut self, source: D) -> Result<ProviderBuilder, SchemaError> {
        let registered = RegisteredDataSource::new(source)?;
        self.data_sources.insert(registered.type_name(), Box::new(registered));
        Ok(self)
    }

    /// Registers an ephemeral resource (Terraform 1.10+ only sees it).
    pub fn ephemeral<E: EphemeralResource>(mut self, ephemeral: E) -> Result<ProviderBuilder, SchemaError> {
        let registered = RegisteredEphemeral::new(ephemeral)?;
        self.ephemerals.insert(registered.type_name(), Box::new(registered));
        Ok(self)
    }

    /// Finishes the provider.
    pub fn build(self) -> ProviderServer {
        let schema_response = pb::get_provider_schema::Response {
            provider: Some(self.provider_schema.schema.clone()),
            resource_schemas: self.resources.iter().map(|(k, r)| ((*k).to_owned(), r.schema().schema.clone())).collect(),
            data_source_schemas: self.data_sources.iter().map(|(k, d)| ((*k).to_owned(), d.schema().schema.clone())).collect(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(capabilities()),
            functions: Default::default(),
            ephemeral_resource_schemas: self.ephemerals.iter().map(|(k, e)| ((*k).to_owned(), e.schema().schema.clone())).collect(),
        };
        ProviderServer {
            inner: Arc::new(Inner {
                provider_schema: self.provider_schema,
                resources: self.resources,
                data_sources: self.data_sources,
                ephemerals: self.ephemerals,
                schema_response,
                ctx: RwLock::new(Arc::new(ProviderContext::default())),
            }),
        }
    }
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        // We do not need a PlanResourceChange call for destroy.
        plan_destroy: false,
        // The schema is static: Terraform may use a cached copy.
        get_provider_schema_optional: true,
        move_resource_state: false,
    }
}

fn decode(dv: Option<&pb::DynamicValue>, ty: &Type) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let result = if !dv.msgpack.is_empty() {
        value::from_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        value::from_json(&dv.json, ty)
    } else {
        return Ok(Value::Null);
    };
    result.map_err(|e| {
        Diagnostic::error("Terraform sent a value the provider could not decode", format!("{e}. This is a provider bug; please report it."))
            .into()
    })
}

fn encode(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostics> {
    value::to_msgpack(v, ty)
        .map(|msgpack| pb::DynamicValue { msgpack, json: Vec::new() })
        .map_err(|e| Diagnostic::error("The provider produced a value it could not encode", format!("{e}. This is a provider bug; please report it.")).into())
}

#[tonic::async_trait]
impl Provider for ProviderServer {
    async fn get_metadata(&self, _: Request<pb::get_metadata::Request>) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            diagnostics: Vec::new(),
            data_sources: self
                .inner
                .data_sources
                .keys()
                .map(|k| pb::get_metadata::DataSourceMetadata { type_name: (*k).to_owned() })
                .collect(),
            resources: self
                .inner
                .resources
                .keys()
                .map(|k| pb::get_metadata::ResourceMetadata { type_name: (*k).to_owned() })
                .collect(),
            ephemeral_resources: self
                .inner
                .ephemerals
                .keys()
                .map(|k| pb::get_metadata::EphemeralMetadata { type_name: (*k).to_owned() })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(self.inner.schema_response.clone()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let diags = match decode(req.config.as_ref(), &self.inner.provider_schema.ty) {
            Ok(config) => validate_rules(&config, &self.inner.provider_schema.rules, &Default::default()),
            Err(d) => d,
        };
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diags = (|| {
            let r = self.resource(&req.type_name)?;
            let config = decode(req.config.as_ref(), &r.schema().ty)?;
            let mut diags = guarded_sync(|| Ok(r.validate(&config)))?;
            let write_only_ok = req.client_capabilities.as_ref().is_some_and(|c| c.write_only_attributes_allowed);
            if !write_only_ok {
                diags.extend(write_only_unsupported(&config, &r.schema().rules));
            }
            Ok::<_, Diagnostics>(diags)
        })()
        .unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diags = (|| {
            let d = self.data_source(&req.type_name)?;
            let config = decode(req.config.as_ref(), &d.schema().ty)?;
            guarded_sync(|| Ok(d.validate(&config)))
        })()
        .unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        let result = (|| {
            let r = self.resource(&req.type_name)?;
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                if raw.flatmap.is_empty() {
                    return Ok(None);
                }
                return Err(Diagnostic::error(
                    "Legacy state format",
                    "this state was written in the pre-0.12 flatmap format, which this provider never produced; restore a newer state.",
                )
                .into());
            }
            let upgraded = r.upgrade(req.version, &raw.json)?;
            encode(&upgraded, &r.schema().ty).map(Some)
        })();
        Ok(Response::new(match result {
            Ok(upgraded_state) => pb::upgrade_resource_state::Response { upgraded_state, diagnostics: Vec::new() },
            Err(d) => pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: d.to_proto() },
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(pb::get_resource_identity_schemas::Response::default()))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = request.into_inner();
        let diags = match decode(req.config.as_ref(), &self.inner.provider_schema.ty) {
            Ok(config) => {
                let ctx = ProviderContext {
                    config: super::schema::value_to_model_json(&config, &self.inner.provider_schema.rules),
                    terraform_version: req.terraform_version,
                    configured: true,
                    planned: Arc::clone(&self.ctx().planned),
                };
                match self.inner.ctx.write() {
                    Ok(mut guard) => *guard = Arc::new(ctx),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(ctx),
                }
                Diagnostics::default()
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::configure_provider::Response { diagnostics: diags.to_proto() }))
    }

    async fn read_resource(&self, request: Request<pb::read_resource::Request>) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = request.into_inner();
        let result = async {
            let r = self.resource(&req.type_name)?;
            let current = decode(req.current_state.as_ref(), &r.schema().ty)?;
            let new = guarded(r.read(self.ctx(), current)).await?;
            encode(&new, &r.schema().ty)
        }
        .await;
        Ok(Response::new(match result {
            Ok(state) => pb::read_resource::Response { new_state: Some(state), diagnostics: Vec::new(), private: req.private },
            Err(d) => pb::read_resource::Response { new_state: req.current_state, diagnostics: d.to_proto(), private: req.private },
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        let result = async {
            let r = self.resource(&req.type_name)?;
            let ty = &r.schema().ty;
            let prior = decode(req.prior_state.as_ref(), ty)?;
            let proposed = decode(req.proposed_new_state.as_ref(), ty)?;
            let config = decode(req.config.as_ref(), ty)?;
            let (planned, replace) = guarded_sync(|| r.plan(&prior, &proposed, &config))?;
            // Cross-resource checks need the provider's configuration (the
            // cluster, the clouds); before ConfigureProvider only the
            // schema's plan applies.
            let ctx = self.ctx();
            let (planned, warnings) = if ctx.configured && !planned.is_null() {
                guarded(r.modify_plan(ctx, prior, planned)).await?
            } else {
                (planned, Diagnostics::default())
            };
            Ok::<_, Diagnostics>((encode(&planned, ty)?, replace, warnings))
        }
        .await;
        Ok(Response::new(match result {
            Ok((planned, replace, warnings)) => pb::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: replace.iter().map(|p| p.to_proto()).collect(),
                planned_private: req.prior_private,
                diagnostics: warnings.to_proto(),
            },
            Err(d) => pb::plan_resource_change::Response { diagnostics: d.to_proto(), ..Default::default() },
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        let result = async {
            let r = self.resource(&req.type_name).map_err(|d| (d, None))?;
            let ty = &r.schema().ty;
            let decoded = (|| {
                Ok::<_, Diagnostics>((
                    decode(req.prior_state.as_ref(), ty)?,
                    decode(req.planned_state.as_ref(), ty)?,
                    decode(req.config.as_ref(), ty)?,
                ))
            })();
            let (prior, planned, config) = decoded.map_err(|d| (d, req.prior_state.clone()))?;
            match guarded(r.apply(self.ctx(), prior, planned, config)).await {
                Ok(applied) => encode(&applied.state, ty).map(|state| (state, applied.diagnostics)).map_err(|d| (d, req.prior_state.clone())),
                // On failure the object is as it was: keep the prior state.
                Err(d) => Err((d, req.prior_state.clone())),
            }
        }
        .await;
        Ok(Response::new(match result {
            Ok((state, diagnostics)) => pb::apply_resource_change::Response { new_state: Some(state), private: req.planned_private, diagnostics: diagnostics.to_proto() },
            Err((d, prior)) => pb::apply_resource_change::Response { new_state: prior, private: Vec::new(), diagnostics: d.to_proto() },
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        let result = async {
            let r = self.resource(&req.type_name)?;
            let state = guarded(r.import(self.ctx(), req.id.clone())).await?;
            encode(&state, &r.schema().ty)
        }
        .await;
        Ok(Response::new(match result {
            Ok(state) => pb::import_resource_state::Response {
                imported_resources: vec![pb::import_resource_state::ImportedResource {
                    type_name: req.type_name,
                    state: Some(state),
                    private: Vec::new(),
                }],
                diagnostics: Vec::new(),
            },
            Err(d) => pb::import_resource_state::Response { imported_resources: Vec::new(), diagnostics: d.to_proto() },
        }))
    }

    async fn read_data_source(&self, request: Request<pb::read_data_source::Request>) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = request.into_inner();
        let result = async {
            let d = self.data_source(&req.type_name)?;
            let config = decode(req.config.as_ref(), &d.schema().ty)?;
            let state = guarded(d.read(self.ctx(), config)).await?;
            encode(&state, &d.schema().ty)
        }
        .await;
        Ok(Response::new(match result {
            Ok(state) => pb::read_data_source::Response { state: Some(state), diagnostics: Vec::new() },
            Err(d) => pb::read_data_source::Response { state: None, diagnostics: d.to_proto() },
        }))
    }

    async fn get_functions(&self, _: Request<pb::get_functions::Request>) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diags = (|| {
            let e = self.ephemeral(&req.type_name)?;
            let config = decode(req.config.as_ref(), &e.schema().ty)?;
            Ok::<_, Diagnostics>(e.validate(&config))
        })()
        .unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_ephemeral_resource_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        let result = async {
            let e = self.ephemeral(&req.type_name)?;
            let config = decode(req.config.as_ref(), &e.schema().ty)?;
            let opened = guarded(e.open(self.ctx(), config)).await?;
            encode(&opened, &e.schema().ty)
        }
        .await;
        Ok(Response::new(match result {
            Ok(value) => pb::open_ephemeral_resource::Response { diagnostics: Vec::new(), result: Some(value), private: None },
            Err(d) => pb::open_ephemeral_resource::Response { diagnostics: d.to_proto(), result: None, private: None },
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        _: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        // We never set renew_at, so Terraform has nothing to renew.
        Ok(Response::new(pb::renew_ephemeral_resource::Response::default()))
    }

    async fn close_ephemeral_resource(
        &self,
        _: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        // Nothing is held open between Open and Close.
        Ok(Response::new(pb::close_ephemeral_resource::Response::default()))
    }

    async fn stop_provider(&self, _: Request<pb::stop_provider::Request>) -> Result<Response<pb::stop_provider::Response>, Status> {
        // Calls are short and cancelled with their gRPC stream; nothing to interrupt.
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}

fn unknown_data_source(type_name: &str) -> Diagnostic {
    Diagnostic::error(
        "Unknown data source",
        format!("this provider has no data source {type_name:?}; check the data source name against the provider documentation."),
    )
}

/// Terraform before 1.11 does not know write-only attributes and would store
/// their values in state: refuse them there, naming the attribute.
fn write_only_unsupported(config: &Value, rules: &super::schema::RuleTree) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for (name, node) in &rules.attrs {
        if node.rules.write_only && !config.attr(name).is_null() {
            diags.push(Diagnostic::attribute_error(
                super::diag::AttrPath::root(name),
                "Write-only attribute needs Terraform 1.11 or newer",
                format!("{name} is write-only (never stored in state), which this Terraform version does not support; upgrade Terraform or leave {name} unset."),
            ));
        }
    }
    diags
}

/// Runs resource code so that a panic (a provider bug) becomes an error
/// diagnostic for this one operation instead of a dropped connection.
async fn guarded<T>(fut: impl std::future::Future<Output = Result<T, Diagnostics>>) -> Result<T, Diagnostics> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(panic_diagnostic(payload.as_ref()).into()),
    }
}

/// The synchronous form of [`guarded`].
fn guarded_sync<T>(f: impl FnOnce() -> Result<T, Diagnostics>) -> Result<T, Diagnostics> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(panic_diagnostic(payload.as_ref()).into()),
    }
}

fn panic_diagnostic(payload: &(dyn std::any::Any + Send)) -> Diagnostic {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned());
    Diagnostic::error(
        "The provider hit an internal error",
        format!("{message}. This is a bug in terraform-provider-secretbridge; please report it with the configuration that triggered it."),
    )
}

//! The [`Resource`] trait every Terraform resource implements, and the
//! generic machinery around it: typed values through serde, plan modifiers
//! (defaults, requires-replace, use-state-for-unknown), validation with
//! attribute paths, import, read with drift, and state upgrades.
//!
//! A resource is one file under `src/resources/`: a model type from
//! `secretbridge_shared::terraform` (serde + schemars, annotated with the
//! `x-terraform-*` keys) and an `impl Resource`, registered in
//! [`crate::provider`]:
//!
//! ```rust,ignore
//! pub struct SecretStore;
//! impl Resource for SecretStore {
//!     type State = secretbridge_shared::terraform::SecretStoreResource;
//!     fn type_name(&self) -> &'static str { "secretbridge_secret_store" }
//!     async fn create(&self, ctx: &ProviderContext, planned: Self::State) -> Result<Self::State, Diagnostics> {
//!         let config: ProviderConfig = ctx.config()?;
//!         // ... talk to the API, fill computed fields, return the new state
//!     }
//!     // read (None = gone, Terraform re-creates), update, delete, import
//! }
//! // lib.rs: builder.resource(resources::secret_store::SecretStore)?
//! ```
//!
//! Computed fields are `Option`s: `None` in configuration and while
//! unknown in a plan. Errors are [`Diagnostics`]; use
//! [`Diagnostic::attribute_error`] with an [`AttrPath`] so Terraform points
//! at the file and line.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as J;

use super::diag::{AttrPath, Diagnostic, Diagnostics};
use super::schema::{AttrNode, GeneratedSchema, Nesting, RuleTree, SchemaOptions};
use super::value::{Type, Value};

/// What ConfigureProvider gave us, shared with every resource call.
#[derive(Debug, Clone, Default)]
pub struct ProviderContext {
    /// The provider configuration block as plain JSON (null attributes omitted).
    pub config: J,
    /// The Terraform CLI version that configured the provider.
    pub terraform_version: String,
    /// Whether ConfigureProvider has run (plan hooks run only then).
    pub configured: bool,
    /// What this provider process has seen planned so far, for checks that
    /// span resources (one registry per process, kept across reconfiguration).
    pub planned: Arc<crate::planned::PlannedObjects>,
}

impl ProviderContext {
    /// The provider configuration as a typed value (e.g. `ProviderConfig` from `shared`).
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        serde_json::from_value(self.config.clone()).map_err(|e| {
            Diagnostic::error(
                "Invalid provider configuration",
                format!("the provider block could not be read: {e}. Check the provider \"secretbridge\" block."),
            )
        })
    }
}

/// A Terraform managed resource. `State` is the resource's model: the
/// configuration and the state share it, computed fields are `Option`s that
/// are `None` in configuration and plans until known.
pub trait Resource: Send + Sync + 'static {
    /// The model, deriving serde and schemars with the schema annotations.
    type State: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static;

    /// The Terraform type name, e.g. `secretbridge_secret_store`.
    fn type_name(&self) -> &'static str;

    /// Schema version; bump it when the state shape changes and handle the
    /// old shape in [`Resource::upgrade_state`].
    fn schema_version(&self) -> i64 {
        0
    }

    /// Extra validation beyond the schema annotations. Called only with a
    /// fully known configuration: while any value is unknown (it references
    /// another resource's computed attribute, e.g. during `terraform
    /// validate` or a plan that creates both) the model cannot be built, so
    /// only the schema rules of the known values are checked. Terraform
    /// validates again once the references are known (in the plan that runs
    /// during apply), so this check still happens before anything is changed.
    fn validate(&self, _config: &Self::State) -> Diagnostics {
        Diagnostics::default()
    }

    /// Adjusts a plan and checks it against other resources and the outside
    /// world, after the schema's plan modifiers ran. Called during
    /// PlanResourceChange only when the provider is configured and the
    /// resource is not being destroyed; `prior` is `None` on create.
    ///
    /// Unknown values: the typed view [`PlannedState::model`] reads a value
    /// that is still unknown ("known after apply") as absent (`None`, an
    /// empty collection, or no model at all when a required value is
    /// unknown). Before concluding that something is missing, ask
    /// [`PlannedState::is_unknown`]. Values written back with
    /// [`PlannedState::set`] keep their unknown-ness where the model left
    /// them absent, so a hook cannot turn an unknown into a null by accident.
    ///
    /// Returns the diagnostics to show (warnings, or errors that fail the plan).
    fn modify_plan(
        &self,
        _ctx: &ProviderContext,
        _prior: Option<&Self::State>,
        _planned: &mut PlannedState<'_, Self::State>,
    ) -> impl Future<Output = Diagnostics> + Send {
        async { Diagnostics::default() }
    }

    /// Creates the object; returns the full new state.
    fn create(&self, ctx: &ProviderContext, planned: Self::State) -> impl Future<Output = Result<Self::State, Diagnostics>> + Send;

    /// Reads the object as it is now; `None` when it no longer exists (drift:
    /// Terraform will plan to re-create it).
    fn read(&self, ctx: &ProviderContext, current: Self::State) -> impl Future<Output = Result<Option<Self::State>, Diagnostics>> + Send;

    /// Updates the object in place; returns the full new state.
    fn update(
        &self,
        ctx: &ProviderContext,
        prior: Self::State,
        planned: Self::State,
    ) -> impl Future<Output = Result<Self::State, Diagnostics>> + Send;

    /// Runs after a create (`creating`) or update returned the new state:
    /// waits for what the configuration asks of the written object (e.g.
    /// Ready) and returns the state to record with the diagnostics. Errors
    /// fail the apply but the state is still recorded, since the object
    /// exists as written: Terraform marks a created one tainted, so the next
    /// apply replaces it. The default waits for nothing.
    fn settle(&self, _ctx: &ProviderContext, written: Self::State, _creating: bool) -> impl Future<Output = (Self::State, Diagnostics)> + Send {
        async move { (written, Diagnostics::default()) }
    }

    /// Deletes the object (already absent is success).
    fn delete(&self, ctx: &ProviderContext, prior: Self::State) -> impl Future<Output = Result<(), Diagnostics>> + Send;

    /// Builds a state from an import ID; Terraform calls read right after.
    fn import(&self, ctx: &ProviderContext, id: String) -> impl Future<Output = Result<Self::State, Diagnostics>> + Send;

    /// Rewrites a state stored at `from_version` (raw JSON) into the current
    /// shape. The default accepts only the current version.
    fn upgrade_state(&self, from_version: i64, raw: J) -> Result<J, Diagnostics> {
        if from_version == self.schema_version() {
            Ok(raw)
        } else {
            Err(Diagnostic::error(
                "Unsupported state version",
                format!(
                    "{} state is at schema version {from_version}, this provider knows version {}. Use a provider release that matches the state.",
                    self.type_name(),
                    self.schema_version()
                ),
            )
            .into())
        }
    }
}

/// What an apply wrote: the new state, and the diagnostics of
/// [`Resource::settle`] (errors there fail the apply but keep the state).
#[derive(Debug)]
pub struct Applied {
    /// The new state (null after a delete).
    pub state: Value,
    /// Diagnostics raised after the write.
    pub diagnostics: Diagnostics,
}

/// A boxed future, for object-safe dispatch.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A resource with its types erased, as the gRPC server holds it.
pub trait DynResource: Send + Sync {
    /// The Terraform type name.
    fn type_name(&self) -> &'static str;
    /// The generated schema.
    fn schema(&self) -> &GeneratedSchema;
    /// Schema-rule and typed validation of a configuration value.
    fn validate(&self, config: &Value) -> Diagnostics;
    /// Plans a change; returns the planned state and the paths forcing replacement.
    fn plan(&self, prior: &Value, proposed: &Value, config: &Value) -> Result<(Value, Vec<AttrPath>), Diagnostics>;
    /// Runs [`Resource::modify_plan`] on a non-null plan: the adjusted plan
    /// and the diagnostics (errors fail the plan, warnings ride along).
    fn modify_plan<'a>(&'a self, ctx: Arc<ProviderContext>, prior: Value, planned: Value) -> BoxFuture<'a, Result<(Value, Diagnostics), Diagnostics>>;
    /// Applies a planned change (create, update or delete). An error
    /// means nothing was written; once something was, the outcome carries
    /// the new state even when its diagnostics fail the apply.
    fn apply<'a>(&'a self, ctx: Arc<ProviderContext>, prior: Value, planned: Value, config: Value) -> BoxFuture<'a, Result<Applied, Diagnostics>>;
    /// Refreshes a state.
    fn read<'a>(&'a self, ctx: Arc<ProviderContext>, current: Value) -> BoxFuture<'a, Result<Value, Diagnostics>>;
    /// Imports by ID.
    fn import<'a>(&'a self, ctx: Arc<ProviderContext>, id: String) -> BoxFuture<'a, Result<Value, Diagnostics>>;
    /// Upgrades a stored raw JSON state to the current schema.
    fn upgrade(&self, version: i64, raw_json: &[u8]) -> Result<Value, Diagnostics>;
}

/// Wraps a [`Resource`] with its generated schema.
pub struct Registered<R: Resource> {
    resource: R,
    schema: GeneratedSchema,
}

impl<R: Resource> Registered<R> {
    /// Generates `R`'s schema; fails if its model cannot be expressed in Terraform.
    pub fn new(resource: R) -> Result<Registered<R>, super::schema::SchemaError> {
        let schema = super::schema::generate::<R::State>(resource.schema_version(), SchemaOptions::default())?;
        Ok(Registered { resource, schema })
    }

    fn typed(&self, v: &Value) -> Result<R::State, Diagnostics> {
        self.schema.to_model(v).map_err(|e| {
            Diagnostic::error(
                format!("Invalid {} value", self.resource.type_name()),
                format!("the value does not match the resource model: {e}"),
            )
            .into()
        })
    }

    /// The state value of `s`; `reference` (the plan or the prior state)
    /// decides whether a block holding only its default is left out.
    fn untyped(&self, s: &R::State, reference: &Value) -> Result<Value, Diagnostics> {
        let mut v = self.schema.from_model(s).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
        null_write_only(&mut v, &self.schema.rules);
        crate::plugin::schema::drop_default_blocks(&mut v, reference, &self.schema.rules);
        Ok(v)
    }
}

/// Write-only attributes never reach plan or state.
fn null_write_only(v: &mut Value, rules: &RuleTree) {
    if let Value::Map(entries) = v {
        for (name, node) in &rules.attrs {
            if node.rules.write_only {
                entries.insert(name.clone(), Value::Null);
            }
        }
    }
}

impl<R: Resource> DynResource for Registered<R> {
    fn type_name(&self) -> &'static str {
        self.resource.type_name()
    }

    fn schema(&self) -> &GeneratedSchema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        // Schema rules apply to the known values; an unknown value is no
        // error. A required attribute that is unknown is absent from the
        // model's JSON, so the typed model (and `Resource::validate`) waits
        // for a fully known configuration.
        let mut diags = validate_rules(config, &self.schema.rules, &AttrPath::default());
        if !diags.has_errors() && !config.contains_unknown() {
            match self.typed(config) {
                Ok(typed) => diags.extend(self.resource.validate(&typed)),
                Err(d) => diags.extend(d),
            }
        }
        diags
    }

    fn plan(&self, prior: &Value, proposed: &Value, config: &Value) -> Result<(Value, Vec<AttrPath>), Diagnostics> {
        Ok(plan_change(prior, proposed, config, &self.schema))
    }

    fn modify_plan<'a>(&'a self, ctx: Arc<ProviderContext>, prior: Value, planned: Value) -> BoxFuture<'a, Result<(Value, Diagnostics), Diagnostics>> {
        Box::pin(async move {
            if planned.is_null() {
                return Ok((planned, Diagnostics::default()));
            }
            let prior_typed = if prior.is_null() { None } else { Some(self.typed(&prior)?) };
            let mut view = PlannedState::new(&self.schema, planned);
            let diags = self.resource.modify_plan(&ctx, prior_typed.as_ref(), &mut view).await;
            if diags.has_errors() {
                return Err(diags);
            }
            let mut planned = view.into_value();
            settle_computed(&prior, &mut planned, &self.schema.rules);
            Ok((planned, diags))
        })
    }

    fn apply<'a>(&'a self, ctx: Arc<ProviderContext>, prior: Value, planned: Value, config: Value) -> BoxFuture<'a, Result<Applied, Diagnostics>> {
        Box::pin(async move {
            if planned.is_null() {
                let prior = self.typed(&prior)?;
                self.resource.delete(&ctx, prior).await?;
                return Ok(Applied { state: Value::Null, diagnostics: Diagnostics::default() });
            }
            // Write-only values are only in the configuration: hand them to the
            // resource through the planned model.
            let mut with_secrets = planned.clone();
            if let Value::Map(entries) = &mut with_secrets {
                for (name, node) in &self.schema.rules.attrs {
                    if node.rules.write_only {
                        entries.insert(name.clone(), config.attr(name).clone());
                    }
                }
            }
            let planned_typed = self.typed(&with_secrets)?;
            let creating = prior.is_null();
            let new = if creating {
                self.resource.create(&ctx, planned_typed).await?
            } else {
                let prior_typed = self.typed(&prior)?;
                self.resource.update(&ctx, prior_typed, planned_typed).await?
            };
            let (new, diagnostics) = self.resource.settle(&ctx, new, creating).await;
            Ok(Applied { state: self.untyped(&new, &planned)?, diagnostics })
        })
    }

    fn read<'a>(&'a self, ctx: Arc<ProviderContext>, current: Value) -> BoxFuture<'a, Result<Value, Diagnostics>> {
        Box::pin(async move {
            if current.is_null() {
                return Ok(Value::Null);
            }
            let typed = self.typed(&current)?;
            match self.resource.read(&ctx, typed).await? {
                Some(s) => self.untyped(&s, &current),
                None => Ok(Value::Null),
            }
        })
    }

    fn import<'a>(&'a self, ctx: Arc<ProviderContext>, id: String) -> BoxFuture<'a, Result<Value, Diagnostics>> {
        Box::pin(async move {
            let s = self.resource.import(&ctx, id).await?;
            self.untyped(&s, &Value::Null)
        })
    }

    fn upgrade(&self, version: i64, raw_json: &[u8]) -> Result<Value, Diagnostics> {
        let current = self.resource.schema_version();
        if version == current {
            // Same shape: decode exactly (keeps big numbers and unknown-free values as stored).
            return super::value::from_json_dropping_unknown_attributes(raw_json, &self.schema.ty)
                .map_err(|e| Diagnostic::from_error(&e).into());
        }
        let raw: J = serde_json::from_slice(raw_json).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
        // Older states are handed over in Terraform's names; the resource
        // returns the current state in Terraform's names too.
        let upgraded = self.resource.upgrade_state(version, raw)?;
        Value::from_serde_json(&upgraded, &self.schema.ty).map_err(|e| Diagnostic::from_error(&e).into())
    }
}

/// A planned new state as [`Resource::modify_plan`] sees it: the raw plan
/// (which may hold unknown values) and a typed view of its known part.
pub struct PlannedState<'s, S> {
    value: Value,
    model: Option<S>,
    schema: &'s GeneratedSchema,
}

impl<'s, S: Serialize + DeserializeOwned> PlannedState<'s, S> {
    /// Wraps a planned value of `schema`'s type.
    pub fn new(schema: &'s GeneratedSchema, value: Value) -> PlannedState<'s, S> {
        let model = schema.to_model(&value).ok();
        PlannedState { value, model, schema }
    }

    /// The typed view: unknown values read as absent; `None` when a
    /// required value is unknown (or the plan is null).
    pub fn model(&self) -> Option<&S> {
        self.model.as_ref()
    }

    /// The raw planned value, unknowns included.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Whether the value at `path` (Terraform attribute names), or anything
    /// inside it, is unknown. A path that leads through a null is known.
    pub fn is_unknown(&self, path: &AttrPath) -> bool {
        use super::diag::PathStep;
        let mut at = &self.value;
        for step in &path.0 {
            at = match (step, at) {
                (_, Value::Unknown) => return true,
                (PathStep::Attr(n) | PathStep::Key(n), Value::Map(m)) => match m.get(n) {
                    Some(v) => v,
                    None => return false,
                },
                (PathStep::Index(i), Value::List(items)) => match usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            };
        }
        at.contains_unknown()
    }

    /// Whether nothing but computed-only attributes is unknown: the typed
    /// view then holds every configured value.
    pub fn config_known(&self) -> bool {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .all(|(name, v)| self.schema.rules.attrs.get(name).is_some_and(|n| n.rules.computed_only) || !v.contains_unknown()),
            other => !other.contains_unknown(),
        }
    }

    /// Replaces the plan with `model`. Where the old plan was unknown and
    /// the model leaves the position absent (null), it stays unknown.
    pub fn set(&mut self, model: S) -> Result<(), Diagnostics> {
        let new = self.schema.from_model(&model).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
        self.value = keep_unknowns(&self.value, new);
        self.model = self.schema.to_model(&self.value).ok();
        Ok(())
    }

    /// Sets one top-level attribute of the plan (typically a computed one
    /// the hook can derive at plan time), leaving every other value exactly
    /// as planned.
    pub fn set_attr(&mut self, name: &str, value: Value) {
        if let Value::Map(entries) = &mut self.value {
            entries.insert(name.to_owned(), value);
        }
        self.model = self.schema.to_model(&self.value).ok();
    }

    /// Fills attributes that are null in the plan but have a default (or
    /// are otherwise computed, not computed-only) with what the typed model
    /// holds there, e.g. the defaults inside a nested object whose own
    /// default was planned as a whole. Configured and unknown values are
    /// left alone. Does nothing without a typed model.
    pub fn fill_defaults_from_model(&mut self) -> Result<(), Diagnostics> {
        let Some(model) = &self.model else { return Ok(()) };
        let from_model = self.schema.from_model(model).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
        fill_null_computed(&mut self.value, &from_model, &self.schema.rules);
        self.model = self.schema.to_model(&self.value).ok();
        Ok(())
    }

    /// The adjusted plan.
    pub fn into_value(self) -> Value {
        self.value
    }
}

/// When a hook's adjustments leave every configurable attribute as it was
/// in the prior state, nothing changes after all: computed-only values the
/// generic plan marked unknown keep their prior values, so the plan is empty.
fn settle_computed(prior: &Value, planned: &mut Value, rules: &RuleTree) {
    if prior.is_null() {
        return;
    }
    let Value::Map(entries) = planned else { return };
    let unchanged = rules.attrs.iter().filter(|(_, n)| !n.rules.computed_only).all(|(name, _)| entries.get(name).unwrap_or(&Value::Null) == prior.attr(name));
    if !unchanged {
        return;
    }
    for (name, node) in &rules.attrs {
        if node.rules.computed_only
            && let Some(slot) = entries.get_mut(name)
            && matches!(slot, Value::Unknown)
        {
            *slot = prior.attr(name).clone();
        }
    }
}

/// Null, non-computed-only, computed attributes of `planned` take their value from `model`.
fn fill_null_computed(planned: &mut Value, model: &Value, rules: &RuleTree) {
    let Value::Map(entries) = planned else { return };
    for (name, node) in &rules.attrs {
        let Some(slot) = entries.get_mut(name) else { continue };
        let source = model.attr(name);
        if slot.is_null() {
            if node.rules.computed && !node.rules.computed_only && !source.is_null() {
                *slot = source.clone();
            }
            continue;
        }
        match (&node.nested, &mut *slot, source) {
            (Some((Nesting::Single, tree)), slot, source) => fill_null_computed(slot, source, tree),
            (Some((_, tree)), Value::List(items), Value::List(sources)) if items.len() == sources.len() => {
                for (item, source) in items.iter_mut().zip(sources) {
                    fill_null_computed(item, source, tree);
                }
            }
            _ => {}
        }
    }
}

/// `new`, with every null position that was unknown in `old` unknown again.
fn keep_unknowns(old: &Value, new: Value) -> Value {
    match (old, new) {
        (Value::Unknown, Value::Null) => Value::Unknown,
        (Value::Map(o), Value::Map(n)) => Value::Map(
            n.into_iter()
                .map(|(k, v)| {
                    let kept = match o.get(&k) {
                        Some(ov) => keep_unknowns(ov, v),
                        None => v,
                    };
                    (k, kept)
                })
                .collect(),
        ),
        (Value::List(o), Value::List(n)) if o.len() == n.len() => Value::List(o.iter().zip(n).map(|(ov, nv)| keep_unknowns(ov, nv)).collect()),
        (_, n) => n,
    }
}

/// A Terraform data source: reads something by its configuration. The
/// model carries both the arguments and the computed results.
pub trait DataSource: Send + Sync + 'static {
    /// The model, deriving serde and schemars with the schema annotations.
    type Model: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static;

    /// The Terraform type name, e.g. `secretbridge_test_object`.
    fn type_name(&self) -> &'static str;

    /// Extra validation beyond the schema annotations.
    fn validate(&self, _config: &Self::Model) -> Diagnostics {
        Diagnostics::default()
    }

    /// Reads the data; returns the full model with computed fields set.
    fn read(&self, ctx: &ProviderContext, config: Self::Model) -> impl Future<Output = Result<Self::Model, Diagnostics>> + Send;
}

/// A data source with its types erased.
pub trait DynDataSource: Send + Sync {
    /// The Terraform type name.
    fn type_name(&self) -> &'static str;
    /// The generated schema.
    fn schema(&self) -> &GeneratedSchema;
    /// Schema-rule and typed validation of a configuration value.
    fn validate(&self, config: &Value) -> Diagnostics;
    /// Reads the data for a configuration.
    fn read<'a>(&'a self, ctx: Arc<ProviderContext>, config: Value) -> BoxFuture<'a, Result<Value, Diagnostics>>;
}

/// Wraps a [`DataSource`] with its generated schema.
pub struct RegisteredDataSource<D: DataSource> {
    source: D,
    schema: GeneratedSchema,
}

impl<D: DataSource> RegisteredDataSource<D> {
    /// Generates `D`'s schema.
    pub fn new(source: D) -> Result<RegisteredDataSource<D>, super::schema::SchemaError> {
        let schema = super::schema::generate::<D::Model>(0, SchemaOptions::default())?;
        Ok(RegisteredDataSource { source, schema })
    }

    fn typed(&self, v: &Value) -> Result<D::Model, Diagnostics> {
        self.schema.to_model(v).map_err(|e| {
            Diagnostic::error(
                format!("Invalid {} configuration", self.source.type_name()),
                format!("the value does not match the data source model: {e}"),
            )
            .into()
        })
    }
}

impl<D: DataSource> DynDataSource for RegisteredDataSource<D> {
    fn type_name(&self) -> &'static str {
        self.source.type_name()
    }

    fn schema(&self) -> &GeneratedSchema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = validate_rules(config, &self.schema.rules, &AttrPath::default());
        if !diags.has_errors() && !config.contains_unknown() {
            match self.typed(config) {
                Ok(typed) => diags.extend(self.source.validate(&typed)),
                Err(d) => diags.extend(d),
            }
        }
        diags
    }

    fn read<'a>(&'a self, ctx: Arc<ProviderContext>, config: Value) -> BoxFuture<'a, Result<Value, Diagnostics>> {
        Box::pin(async move {
            let typed = self.typed(&config)?;
            let model = self.source.read(&ctx, typed).await?;
            self.schema.from_model(&model).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))
        })
    }
}

/// A Terraform ephemeral resource (Terraform 1.10+): produces values, such
/// as short-lived tokens, that are never stored in plan or state. Older
/// Terraform versions never see them (they skip the schema field).
pub trait EphemeralResource: Send + Sync + 'static {
    /// The model: arguments and results.
    type Model: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static;

    /// The Terraform type name.
    fn type_name(&self) -> &'static str;

    /// Opens the resource: returns the full model with results set.
    fn open(&self, ctx: &ProviderContext, config: Self::Model) -> impl Future<Output = Result<Self::Model, Diagnostics>> + Send;
}

/// An ephemeral resource with its types erased.
pub trait DynEphemeral: Send + Sync {
    /// The Terraform type name.
    fn type_name(&self) -> &'static str;
    /// The generated schema.
    fn schema(&self) -> &GeneratedSchema;
    /// Schema-rule validation of a configuration value.
    fn validate(&self, config: &Value) -> Diagnostics;
    /// Opens it for a configuration.
    fn open<'a>(&'a self, ctx: Arc<ProviderContext>, config: Value) -> BoxFuture<'a, Result<Value, Diagnostics>>;
}

/// Wraps an [`EphemeralResource`] with its generated schema.
pub struct RegisteredEphemeral<E: EphemeralResource> {
    inner: E,
    schema: GeneratedSchema,
}

impl<E: EphemeralResource> RegisteredEphemeral<E> {
    /// Generates `E`'s schema.
    pub fn new(inner: E) -> Result<RegisteredEphemeral<E>, super::schema::SchemaError> {
        let schema = super::schema::generate::<E::Model>(0, SchemaOptions::default())?;
        Ok(RegisteredEphemeral { inner, schema })
    }
}

impl<E: EphemeralResource> DynEphemeral for RegisteredEphemeral<E> {
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }

    fn schema(&self) -> &GeneratedSchema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        validate_rules(config, &self.schema.rules, &AttrPath::default())
    }

    fn open<'a>(&'a self, ctx: Arc<ProviderContext>, config: Value) -> BoxFuture<'a, Result<Value, Diagnostics>> {
        Box::pin(async move {
            let typed: E::Model = self.schema.to_model(&config).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
            let model = self.inner.open(&ctx, typed).await?;
            self.schema.from_model(&model).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))
        })
    }
}

/// The generic plan: start from Terraform's proposed new state, apply
/// defaults, mark computed values unknown where they will change, keep
/// prior values for use-state-for-unknown, and list requires-replace paths.
pub fn plan_change(prior: &Value, proposed: &Value, config: &Value, schema: &GeneratedSchema) -> (Value, Vec<AttrPath>) {
    if proposed.is_null() {
        return (Value::Null, Vec::new());
    }
    let mut planned = proposed.clone();
    let mut replace = Vec::new();
    let unknown_candidates = plan_object(prior, &mut planned, config, &schema.rules, &schema.ty, &AttrPath::default(), &mut replace);
    // On update, computed values the provider derives may change once
    // anything else changes: show them as "known after apply".
    if !prior.is_null()
        && let Value::Map(entries) = &mut planned
    {
        let changed = schema
            .rules
            .attrs
            .keys()
            .filter(|n| !unknown_candidates.contains(n))
            .any(|n| entries.get(n).unwrap_or(&Value::Null) != prior.attr(n));
        if changed {
            for name in unknown_candidates {
                entries.insert(name, Value::Unknown);
            }
        }
    }
    (planned, replace)
}

/// Plans one object (the resource, or a nested object): defaults, unknown
/// computed values on create, prior values for use-state-for-unknown,
/// requires-replace paths. Returns the computed attributes that keep their
/// prior value unless something else changes.
fn plan_object(
    prior: &Value,
    planned: &mut Value,
    config: &Value,
    rules: &RuleTree,
    ty: &Type,
    base: &AttrPath,
    replace: &mut Vec<AttrPath>,
) -> Vec<String> {
    let creating = prior.is_null();
    let (Type::Object(types), Value::Map(entries)) = (ty, planned) else { return Vec::new() };
    let mut unknown_candidates = Vec::new();
    for (name, node) in &rules.attrs {
        let r = &node.rules;
        let path = base.attr(name);
        if r.write_only {
            entries.insert(name.clone(), Value::Null);
            continue;
        }
        let config_value = config.attr(name);
        if config_value.is_null() && r.computed {
            if let (Some(default), Some(aty)) = (&r.default, types.get(name)) {
                if let Ok(v) = Value::from_serde_json(default, aty) {
                    entries.insert(name.clone(), v);
                }
            } else if creating {
                entries.insert(name.clone(), Value::Unknown);
            } else if r.use_state_for_unknown {
                entries.insert(name.clone(), prior.attr(name).clone());
            } else {
                unknown_candidates.push(name.clone());
            }
        } else if let (Some((nesting, inner)), Some(aty)) = (&node.nested, types.get(name)) {
            // Nested objects the configuration sets: plan their attributes too.
            let prior_value = prior.attr(name);
            if let Some(current) = entries.get_mut(name) {
                plan_nested(*nesting, prior_value, current, config_value, inner, aty, &path, replace);
            }
        }
        if !creating && r.requires_replace && entries.get(name).unwrap_or(&Value::Null) != prior.attr(name) {
            replace.push(path);
        }
    }
    unknown_candidates
}

#[allow(clippy::too_many_arguments)]
fn plan_nested(
    nesting: Nesting,
    prior: &Value,
    planned: &mut Value,
    config: &Value,
    rules: &RuleTree,
    ty: &Type,
    path: &AttrPath,
    replace: &mut Vec<AttrPath>,
) {
    match (nesting, planned, ty) {
        (Nesting::Single, planned @ Value::Map(_), ty) => {
            plan_object(prior, planned, config, rules, ty, path, replace);
        }
        (Nesting::List | Nesting::Set, Value::List(items), Type::List(ety) | Type::Set(ety)) => {
            let (prior_items, config_items) = match (prior, config) {
                (Value::List(p), Value::List(c)) => (p.as_slice(), c.as_slice()),
                (_, Value::List(c)) => (&[][..], c.as_slice()),
                _ => return,
            };
            for (i, item) in items.iter_mut().enumerate() {
                // Set elements have no stable position: plan them as new.
                let prior_item = if nesting == Nesting::List { prior_items.get(i).unwrap_or(&Value::Null) } else { &Value::Null };
                let config_item = config_items.get(i).unwrap_or(&Value::Null);
                plan_object(prior_item, item, config_item, rules, ety, &path.index(i), replace);
            }
        }
        (Nesting::Map, Value::Map(items), Type::Map(ety)) => {
            for (k, item) in items.iter_mut() {
                let prior_item = prior.attr(k);
                let config_item = config.attr(k);
                plan_object(prior_item, item, config_item, rules, ety, &path.key(k), replace);
            }
        }
        _ => {}
    }
}

/// Checks a configuration value against the schema rules, with paths.
pub fn validate_rules(value: &Value, rules: &RuleTree, base: &AttrPath) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for (name, node) in &rules.attrs {
        let path = base.attr(name);
        validate_node(value.attr(name), node, &path, &mut diags);
    }
    if !rules.one_of.is_empty() && !value.contains_unknown() {
        let set = rules.one_of.iter().filter(|group| group.iter().any(|n| !value.attr(n).is_null())).count();
        if set != 1 {
            let names: Vec<String> = rules.one_of.iter().map(|g| g.join("+")).collect();
            let summary = if set == 0 { "Missing required choice" } else { "Conflicting choices" };
            let detail = format!("exactly one of {} must be set{}.", names.join(", "), if base.0.is_empty() { String::new() } else { format!(" in {base}") });
            diags.push(match base.0.is_empty() {
                true => Diagnostic::error(summary, detail),
                false => Diagnostic::attribute_error(base.clone(), summary, detail),
            });
        }
    }
    diags
}

fn validate_node(v: &Value, node: &AttrNode, path: &AttrPath, diags: &mut Diagnostics) {
    let r = &node.rules;
    if v.is_null() || matches!(v, Value::Unknown) {
        return;
    }
    if r.computed_only {
        diags.push(Diagnostic::attribute_error(
            path.clone(),
            "Value for unconfigurable attribute",
            format!("{path} is set by the provider; remove it from the configuration."),
        ));
        return;
    }
    if let Some(allowed) = &r.allowed {
        let as_json = v.to_serde_json();
        if !allowed.contains(&as_json) {
            let list: Vec<String> = allowed.iter().map(J::to_string).collect();
            diags.push(Diagnostic::attribute_error(
                path.clone(),
                "Invalid value",
                format!("{path} is {as_json}; it must be one of {}.", list.join(", ")),
            ));
        }
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = r.min_length
                && len < min
            {
                diags.push(Diagnostic::attribute_error(
                    path.clone(),
                    "Value too short",
                    format!("{path} must be at least {min} characters long, got {len}."),
                ));
            }
            if let Some(max) = r.max_length
                && len > max
            {
                diags.push(Diagnostic::attribute_error(
                    path.clone(),
                    "Value too long",
                    format!("{path} must be at most {max} characters long, got {len}."),
                ));
            }
            if let Some(pattern) = &r.pattern {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => diags.push(Diagnostic::attribute_error(
                        path.clone(),
                        "Value does not match the required pattern",
                        match r.description.as_str() {
                            "" => format!("{path} is {s:?}; it must match the regular expression {pattern}."),
                            about => format!("{path} is {s:?}; it must match the regular expression {pattern}. {path}: {about}"),
                        },
                    )),
                    Ok(_) => {}
                    Err(e) => diags.push(Diagnostic::error(
                        "Invalid pattern in provider schema",
                        format!("the pattern for {path} does not compile ({e}); this is a provider bug."),
                    )),
                }
            }
        }
        Value::Number(n) => {
            let f = n.as_f64();
            if let Some(min) = r.minimum
                && f < min
            {
                diags.push(Diagnostic::attribute_error(path.clone(), "Value too small", format!("{path} must be at least {min}.")));
            }
            if let Some(max) = r.maximum
                && f > max
            {
                diags.push(Diagnostic::attribute_error(path.clone(), "Value too large", format!("{path} must be at most {max}.")));
            }
        }
        Value::List(items) => {
            check_size(items.len(), r, path, diags);
            for (i, item) in items.iter().enumerate() {
                match &node.nested {
                    Some((_, tree)) => diags.extend(validate_rules(item, tree, &path.index(i))),
                    None => validate_element(item, r, &path.index(i), diags),
                }
            }
        }
        Value::Map(entries) => match &node.nested {
            Some((Nesting::Single, tree)) => diags.extend(validate_rules(v, tree, path)),
            Some((_, tree)) => {
                check_size(entries.len(), r, path, diags);
                for (k, item) in entries {
                    diags.extend(validate_rules(item, tree, &path.key(k)));
                }
            }
            None => {
                check_size(entries.len(), r, path, diags);
                for (k, item) in entries {
                    validate_element(item, r, &path.key(k), diags);
                }
            }
        },
        _ => {}
    }
}

/// Element-level checks of a primitive collection (schemars puts `items`
/// constraints on the elements; we only carry enum/range/pattern down).
fn validate_element(v: &Value, r: &super::schema::AttrRules, path: &AttrPath, diags: &mut Diagnostics) {
    let elem_rules = super::schema::AttrRules {
        allowed: None,
        min_length: None,
        max_length: None,
        pattern: None,
        minimum: r.minimum,
        maximum: r.maximum,
        ..Default::default()
    };
    validate_node(v, &AttrNode { rules: elem_rules, ..AttrNode::default() }, path, diags);
}

fn check_size(len: usize, r: &super::schema::AttrRules, path: &AttrPath, diags: &mut Diagnostics) {
    let len = len as u64;
    if let Some(min) = r.min_length
        && len < min
    {
        diags.push(Diagnostic::attribute_error(path.clone(), "Too few elements", format!("{path} needs at least {min} elements, got {len}.")));
    }
    if let Some(max) = r.max_length
        && len > max
    {
        diags.push(Diagnostic::attribute_error(path.clone(), "Too many elements", format!("{path} allows at most {max} elements, got {len}.")));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plugin::schema::generate;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    /// Model.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Outer {
        /// Name.
        #[schemars(extend("x-terraform-requires-replace" = true))]
        name: String,
        /// Nested.
        inner: Inner,
        /// Nested list.
        #[serde(default)]
        items: Option<Vec<Inner>>,
        /// Server id.
        #[schemars(extend("x-terraform-computed-only" = true))]
        id: Option<String>,
    }

    /// Inner.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        /// Key, replaces.
        #[schemars(extend("x-terraform-requires-replace" = true))]
        key: String,
        /// Interval with a default.
        #[serde(default = "one_hour")]
        interval: String,
        /// Computed.
        #[schemars(extend("x-terraform-computed-only" = true))]
        uid: Option<String>,
    }

    fn one_hour() -> String {
        "1h".into()
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<BTreeMap<_, _>>())
    }

    #[test]
    fn nested_defaults_unknowns_and_replacements_are_planned() {
        let g = generate::<Outer>(0, SchemaOptions::default()).unwrap();
        let config = obj(&[
            ("name", s("a")),
            ("inner", obj(&[("key", s("k1")), ("interval", Value::Null), ("uid", Value::Null)])),
            ("items", Value::List(vec![obj(&[("key", s("x")), ("interval", s("5m")), ("uid", Value::Null)])])),
            ("id", Value::Null),
        ]);
        let (planned, replace) = plan_change(&Value::Null, &config, &config, &g);
        assert!(replace.is_empty());
        assert_eq!(planned.attr("inner").attr("interval"), &s("1h"), "nested default");
        assert_eq!(planned.attr("inner").attr("uid"), &Value::Unknown, "nested computed on create");
        let Value::List(items) = planned.attr("items") else { panic!("list") };
        assert_eq!(items[0].attr("interval"), &s("5m"), "configured value kept");
        assert_eq!(planned.attr("id"), &Value::Unknown);

        // Prior state as the provider would have stored it.
        let prior = obj(&[
            ("name", s("a")),
            ("inner", obj(&[("key", s("k1")), ("interval", s("1h")), ("uid", s("u1"))])),
            ("items", Value::List(vec![obj(&[("key", s("x")), ("interval", s("5m")), ("uid", s("u2"))])])),
            ("id", s("i1")),
        ]);
        // Terraform's proposed state keeps prior computed values where config is null.
        let proposed_same = prior.clone();
        let (planned, replace) = plan_change(&prior, &proposed_same, &config, &g);
        assert!(replace.is_empty());
        assert_eq!(planned, prior, "no change plans the prior state");

        let changed_config = obj(&[
            ("name", s("a")),
            ("inner", obj(&[("key", s("k2")), ("interval", Value::Null), ("uid", Value::Null)])),
            ("items", config.attr("items").clone()),
            ("id", Value::Null),
        ]);
        let mut proposed = prior.clone();
        if let Value::Map(m) = &mut proposed {
            m.insert("inner".into(), obj(&[("key", s("k2")), ("interval", s("1h")), ("uid", s("u1"))]));
        }
        let (planned, replace) = plan_change(&prior, &proposed, &changed_config, &g);
        assert_eq!(replace, vec![AttrPath::root("inner").attr("key")]);
        assert_eq!(planned.attr("id"), &Value::Unknown, "computed id unknown once something changes");
    }

    /// The test-only resource's configuration with `content` set to `content`.
    fn test_object_config(name: Value, content: Value) -> Value {
        obj(&[
            ("name", name),
            ("content", content),
            ("secret", Value::Null),
            ("format", Value::Null),
            ("labels", Value::Null),
            ("owner", Value::Null),
            ("token_wo", Value::Null),
            ("id", Value::Null),
            ("revision", Value::Null),
        ])
    }

    fn test_object() -> Registered<crate::resources::test_object::TestObjectResource> {
        Registered::new(crate::resources::test_object::TestObjectResource::in_dir("/nonexistent")).unwrap()
    }

    #[test]
    fn unknown_required_attribute_is_not_a_validation_error() {
        let r = test_object();
        // content references another resource's computed attribute.
        let diags = DynResource::validate(&r, &test_object_config(s("alpha"), Value::Unknown));
        assert!(!diags.has_errors(), "{diags:?}");
        let diags = DynResource::validate(&r, &test_object_config(Value::Unknown, Value::Unknown));
        assert!(!diags.has_errors(), "{diags:?}");
    }

    #[test]
    fn known_values_are_still_checked_next_to_unknown_ones() {
        let r = test_object();
        // The name's pattern applies even though content is unknown.
        let diags = DynResource::validate(&r, &test_object_config(s("Not_Valid"), Value::Unknown));
        assert!(diags.has_errors());
        assert!(format!("{diags:?}").contains("regular expression"), "{diags:?}");
        // Unknown leaves inside collections and nested objects are skipped too.
        let mut config = test_object_config(s("alpha"), s("fine"));
        if let Value::Map(m) = &mut config {
            m.insert("format".into(), Value::Unknown);
            m.insert("labels".into(), obj(&[("team", Value::Unknown)]));
            m.insert("owner".into(), obj(&[("team", Value::Unknown), ("email", Value::Null)]));
        }
        let diags = DynResource::validate(&r, &config);
        assert!(!diags.has_errors(), "{diags:?}");
        if let Value::Map(m) = &mut config {
            m.insert("format".into(), s("yaml"));
        }
        let diags = DynResource::validate(&r, &config);
        assert!(format!("{diags:?}").contains("must be one of"), "known enum still checked: {diags:?}");
    }

    #[test]
    fn typed_validation_runs_once_the_configuration_is_known() {
        let r = test_object();
        // Resource::validate rejects "forbidden" content; it waits for known values.
        let diags = DynResource::validate(&r, &test_object_config(s("alpha"), s("forbidden")));
        assert!(format!("{diags:?}").contains("Forbidden content"), "{diags:?}");
        let mut config = test_object_config(s("alpha"), s("forbidden"));
        if let Value::Map(m) = &mut config {
            m.insert("secret".into(), Value::Unknown);
        }
        let diags = DynResource::validate(&r, &config);
        assert!(!diags.has_errors(), "typed validation skipped while a value is unknown: {diags:?}");
        // And a fully known valid configuration passes.
        assert!(!DynResource::validate(&r, &test_object_config(s("alpha"), s("v1"))).has_errors());
    }

    #[test]
    fn unknown_config_values_are_planned_with_modifiers() {
        let g = generate::<Outer>(0, SchemaOptions::default()).unwrap();
        // Create: name (requires-replace) and a nested key unknown; defaults
        // still apply and computed values are unknown, no replace.
        let config = obj(&[
            ("name", Value::Unknown),
            ("inner", obj(&[("key", Value::Unknown), ("interval", Value::Null), ("uid", Value::Null)])),
            ("items", Value::Null),
            ("id", Value::Null),
        ]);
        let (planned, replace) = plan_change(&Value::Null, &config, &config, &g);
        assert!(replace.is_empty());
        assert_eq!(planned.attr("name"), &Value::Unknown);
        assert_eq!(planned.attr("inner").attr("key"), &Value::Unknown);
        assert_eq!(planned.attr("inner").attr("interval"), &s("1h"), "default next to an unknown");
        assert_eq!(planned.attr("id"), &Value::Unknown);

        // Update: an unknown requires-replace value against a known prior
        // value may change, so it plans a replace (as the framework does).
        let prior = obj(&[
            ("name", s("a")),
            ("inner", obj(&[("key", s("k1")), ("interval", s("1h")), ("uid", s("u1"))])),
            ("items", Value::Null),
            ("id", s("i1")),
        ]);
        let config = obj(&[
            ("name", Value::Unknown),
            ("inner", obj(&[("key", s("k1")), ("interval", Value::Null), ("uid", Value::Null)])),
            ("items", Value::Null),
            ("id", Value::Null),
        ]);
        let mut proposed = prior.clone();
        if let Value::Map(m) = &mut proposed {
            m.insert("name".into(), Value::Unknown);
        }
        let (planned, replace) = plan_change(&prior, &proposed, &config, &g);
        assert_eq!(replace, vec![AttrPath::root("name")]);
        assert_eq!(planned.attr("name"), &Value::Unknown);
        assert_eq!(planned.attr("inner").attr("uid"), &s("u1"), "nested computed keeps its prior value");
        assert_eq!(planned.attr("id"), &Value::Unknown, "computed values unknown once something may change");
        // A known, unchanged value next to it forces nothing.
        assert!(!replace.contains(&AttrPath::root("inner").attr("key")));
    }

    #[test]
    fn use_state_for_unknown_keeps_prior_value_when_a_reference_is_unknown() {
        let g = generate::<crate::resources::test_object::TestObject>(0, SchemaOptions::default()).unwrap();
        let prior = obj(&[
            ("name", s("alpha")),
            ("content", s("rev-1")),
            ("secret", Value::Null),
            ("format", s("pretty")),
            ("labels", Value::Null),
            ("owner", Value::Null),
            ("token_wo", Value::Null),
            ("id", s("alpha")),
            ("revision", Value::Number(crate::plugin::value::Number::Int(1))),
        ]);
        let config = test_object_config(s("alpha"), Value::Unknown);
        let mut proposed = prior.clone();
        if let Value::Map(m) = &mut proposed {
            m.insert("content".into(), Value::Unknown);
        }
        let (planned, replace) = plan_change(&prior, &proposed, &config, &g);
        assert!(replace.is_empty(), "content updates in place: {replace:?}");
        assert_eq!(planned.attr("content"), &Value::Unknown);
        assert_eq!(planned.attr("id"), &s("alpha"), "use-state-for-unknown");
        assert_eq!(planned.attr("revision"), &Value::Unknown);
        assert_eq!(planned.attr("format"), &s("pretty"), "default");
    }
}

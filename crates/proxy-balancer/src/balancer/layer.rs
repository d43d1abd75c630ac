use std::sync::Arc;

use proxy_balancer_core::BalancerStore;
use tower_layer::Layer;

use super::{Balancer, BalancerOptions, MakeMember};

/// Builds a [`Balancer`] over the members of a store from a [`MakeMember`], so that the
/// balancer composes in a `ServiceBuilder`: `ServiceBuilder::new().layer(BalancerLayer::new(store)).service(make_member)`.
///
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct BalancerLayer {
    store: Arc<BalancerStore>,
    options: BalancerOptions,
}

impl BalancerLayer {
    /// A layer over the members of `store`.
    #[must_use]
    pub fn new(store: Arc<BalancerStore>) -> Self {
        Self {
            store,
            options: BalancerOptions::default(),
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: BalancerOptions) -> Self {
        self.options = options;
        self
    }
}

impl<M: MakeMember> Layer<M> for BalancerLayer {
    type Service = Balancer<M>;

    fn layer(&self, make: M) -> Balancer<M> {
        Balancer::with_options(Arc::clone(&self.store), make, self.options.clone())
    }
}

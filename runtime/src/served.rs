//! What the gateway serves at one moment: the route table, its docs and the plan they came from,
//! swapped whole behind one [`arc_swap`] pointer so that a handshake, `/plan` and `/docs/` can never
//! see a table from one plan and docs from another.

use std::sync::Arc;

use portico_compiler::plan::Plan;

use crate::docs_site::DocsSite;
use crate::routes::RouteTable;

/// One immutable snapshot of the served state.
#[derive(Debug)]
pub struct Served {
    /// The plan being served (the base of the next reload's diff).
    pub plan: Arc<Plan>,
    /// Routes of the plan being served.
    pub table: Arc<RouteTable>,
    /// The API docs for that plan (re-rendered on reloads that change only prose).
    pub docs: Arc<DocsSite>,
    /// Bumped each time the route table changes: a handshake that matched a route in one
    /// generation and registered its connection in another re-checks the route (see
    /// [`crate::server`]), so a reload can never leave a connection on a vanished route.
    pub generation: u64,
}

impl Served {
    pub fn hash(&self) -> &str {
        &self.table.plan_hash
    }
}

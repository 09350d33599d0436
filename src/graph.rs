//! A generic dependency graph: nodes, edges, cycle reports, topological order, and an
//! async walker that runs a node once everything it depends on succeeded, with a
//! concurrency limit, skipping (and reporting once) the dependents of a failure.
//!
//! It knows nothing about resources.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Node ids are indexes into the graph's node list.
pub type NodeId = usize;

#[derive(Debug, Clone)]
pub struct Graph<N> {
    nodes: Vec<N>,
    /// `deps[n]`: the nodes `n` depends on.
    deps: Vec<BTreeSet<NodeId>>,
    /// `dependents[n]`: the nodes that depend on `n`.
    dependents: Vec<BTreeSet<NodeId>>,
}

impl<N> Default for Graph<N> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            deps: Vec::new(),
            dependents: Vec::new(),
        }
    }
}

impl<N> Graph<N> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, node: N) -> NodeId {
        self.nodes.push(node);
        self.deps.push(BTreeSet::new());
        self.dependents.push(BTreeSet::new());
        self.nodes.len() - 1
    }

    /// `from` depends on `to`: `to` runs first.
    pub fn depend(&mut self, from: NodeId, to: NodeId) {
        self.deps[from].insert(to);
        self.dependents[to].insert(from);
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id]
    }

    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &N)> {
        self.nodes.iter().enumerate()
    }

    pub fn deps(&self, id: NodeId) -> &BTreeSet<NodeId> {
        &self.deps[id]
    }

    pub fn dependents(&self, id: NodeId) -> &BTreeSet<NodeId> {
        &self.dependents[id]
    }

    /// Dependencies first. On a cycle, the nodes of one cycle in order, the first
    /// repeated at the end.
    pub fn topological(&self) -> Result<Vec<NodeId>, Vec<NodeId>> {
        let mut remaining: Vec<usize> = self.deps.iter().map(BTreeSet::len).collect();
        let mut ready: VecDeque<NodeId> = (0..self.len()).filter(|&n| remaining[n] == 0).collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(n) = ready.pop_front() {
            order.push(n);
            for &d in &self.dependents[n] {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.push_back(d);
                }
            }
        }
        if order.len() == self.len() {
            Ok(order)
        } else {
            Err(self.find_cycle(&remaining))
        }
    }

    fn find_cycle(&self, remaining: &[usize]) -> Vec<NodeId> {
        // Every node left with unmet dependencies has one that is also left; following
        // those edges must revisit a node.
        let start = (0..self.len())
            .find(|&n| remaining[n] > 0)
            .expect("a cycle exists");
        let mut path = vec![start];
        let mut seen = BTreeMap::from([(start, 0usize)]);
        let mut cur = start;
        loop {
            let next = *self.deps[cur]
                .iter()
                .find(|&&d| remaining[d] > 0)
                .expect("left nodes depend on left nodes");
            if let Some(&i) = seen.get(&next) {
                let mut cycle = path[i..].to_vec();
                cycle.push(next);
                return cycle;
            }
            seen.insert(next, path.len());
            path.push(next);
            cur = next;
        }
    }

    /// `roots` and everything they depend on, transitively.
    pub fn closure(&self, roots: impl IntoIterator<Item = NodeId>) -> BTreeSet<NodeId> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<NodeId> = roots.into_iter().collect();
        while let Some(n) = stack.pop() {
            if out.insert(n) {
                stack.extend(self.deps[n].iter().copied());
            }
        }
        out
    }
}

/// How a walk ended for each node that did not succeed.
#[derive(Debug, Default)]
pub struct WalkReport<E> {
    pub succeeded: Vec<NodeId>,
    pub failed: Vec<(NodeId, E)>,
    /// Nodes not run because something they depend on failed: (node, the failure).
    pub skipped: Vec<(NodeId, NodeId)>,
}

/// Runs `visit` for every node, dependencies first, at most `limit` at a time. A node
/// whose dependency failed (or was skipped) is skipped; independent nodes still run.
pub async fn walk<N, E, F, Fut>(graph: &Graph<N>, limit: usize, visit: F) -> WalkReport<E>
where
    F: Fn(NodeId) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(limit.max(1)));
    let mut remaining: Vec<usize> = graph.deps.iter().map(BTreeSet::len).collect();
    let mut blocked_by: Vec<Option<NodeId>> = vec![None; graph.len()];
    let mut report = WalkReport {
        succeeded: Vec::new(),
        failed: Vec::new(),
        skipped: Vec::new(),
    };
    let mut running = JoinSet::new();
    let mut ready: VecDeque<NodeId> = (0..graph.len()).filter(|&n| remaining[n] == 0).collect();
    loop {
        while let Some(n) = ready.pop_front() {
            if let Some(cause) = blocked_by[n] {
                report.skipped.push((n, cause));
                release(
                    graph,
                    n,
                    Some(cause),
                    &mut remaining,
                    &mut blocked_by,
                    &mut ready,
                );
                continue;
            }
            let permit = semaphore.clone().acquire_owned();
            let fut = visit(n);
            running.spawn(async move {
                let _permit = permit.await.expect("semaphore never closes");
                (n, fut.await)
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (n, result) = match done {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue,
        };
        match result {
            Ok(()) => {
                report.succeeded.push(n);
                release(graph, n, None, &mut remaining, &mut blocked_by, &mut ready);
            }
            Err(e) => {
                report.failed.push((n, e));
                release(
                    graph,
                    n,
                    Some(n),
                    &mut remaining,
                    &mut blocked_by,
                    &mut ready,
                );
            }
        }
    }
    report
}

fn release<N>(
    graph: &Graph<N>,
    n: NodeId,
    failure: Option<NodeId>,
    remaining: &mut [usize],
    blocked_by: &mut [Option<NodeId>],
    ready: &mut VecDeque<NodeId>,
) {
    for &d in &graph.dependents[n] {
        if blocked_by[d].is_none() {
            blocked_by[d] = failure;
        }
        remaining[d] -= 1;
        if remaining[d] == 0 {
            ready.push_back(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn chain() -> Graph<&'static str> {
        // a <- b <- c ; a <- d ; e alone
        let mut g = Graph::new();
        let a = g.add("a");
        let b = g.add("b");
        let c = g.add("c");
        let d = g.add("d");
        g.add("e");
        g.depend(b, a);
        g.depend(c, b);
        g.depend(d, a);
        g
    }

    #[test]
    fn topological_puts_dependencies_first() {
        let g = chain();
        let order = g.topological().unwrap();
        let pos = |n| order.iter().position(|&x| x == n).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(2) && pos(0) < pos(3));
    }

    #[test]
    fn cycle_is_reported_with_its_path() {
        let mut g = chain();
        g.depend(0, 2); // a depends on c: a → c → b → a
        let cycle = g.topological().unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        let names: Vec<_> = cycle.iter().map(|&n| *g.node(n)).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(!names.contains(&"e") && !names.contains(&"d"));
    }

    #[tokio::test]
    async fn failure_skips_dependents_but_not_independent_nodes() {
        let g = chain();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let r = ran.clone();
        let report = walk(&g, 4, move |n| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(n);
                if n == 1 {
                    Err("boom")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.skipped, vec![(2, 1)]);
        let ran = ran.lock().unwrap();
        assert!(ran.contains(&3) && ran.contains(&4) && !ran.contains(&2));
    }

    #[tokio::test]
    async fn concurrency_limit_is_respected() {
        let mut g = Graph::new();
        for i in 0..20 {
            g.add(i);
        }
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n2, p2) = (now.clone(), peak.clone());
        walk(&g, 3, move |_| {
            let (now, peak) = (n2.clone(), p2.clone());
            async move {
                let cur = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(cur, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), ()>(())
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}

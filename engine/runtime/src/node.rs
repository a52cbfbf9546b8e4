//! `Node`: a running Osiris member — the handle applications hold. Building
//! it binds the sockets, makes the protocol core and starts the data-plane
//! thread; dropping the last handle leaves the domain and stops the thread.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use osiris_core::{DomainView, StopReason};
use osiris_transport::Waker;

use crate::config::RuntimeConfig;
use crate::engine::Engine;
use crate::group::GroupBuilder;
use crate::handlers::{NodeHandlers, RuntimeStats};
use crate::shared::{Control, Shared};
use crate::RuntimeError;

/// Starting capacity of the prefilled send buffers.
const SEND_BUFFER_START: usize = 1024;

/// Builds a [`Node`]: the config, then node-wide handlers, then `start`.
pub struct NodeBuilder {
    config: RuntimeConfig,
    handlers: NodeHandlers,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    pub fn new(config: RuntimeConfig) -> NodeBuilder {
        NodeBuilder {
            config,
            handlers: NodeHandlers::default(),
        }
    }

    /// Called on the data-plane thread with each new domain view.
    #[must_use]
    pub fn on_domain_view(mut self, handler: impl FnMut(&DomainView) + Send + 'static) -> Self {
        self.handlers.domain_view = Some(Box::new(handler));
        self
    }

    /// Called on the data-plane thread when the node stops (left, excluded,
    /// or cut off from the majority of its view).
    #[must_use]
    pub fn on_stopped(mut self, handler: impl FnMut(StopReason) + Send + 'static) -> Self {
        self.handlers.stopped = Some(Box::new(handler));
        self
    }

    /// Binds, makes the core and starts the data-plane thread.
    ///
    /// # Errors
    /// A bad config, a socket the kernel refused, or a thread that could not start.
    pub fn start(self) -> Result<Node, RuntimeError> {
        let (control_tx, control_rx) = mpsc::channel();
        let waker = Waker::new().map_err(|error| RuntimeError::Thread(error.to_string()))?;
        let shared = Arc::new(Shared {
            submissions: ArrayQueue::new(self.config.submit_ring_len),
            free: ArrayQueue::new(self.config.submit_ring_len),
            control: control_tx,
            waker,
            sleeping: CachePadded::new(AtomicBool::new(false)),
            stopped: AtomicBool::new(false),
            payload_max: self.config.core.payload_max,
            send_timeout: self.config.send_timeout,
        });
        // Every send buffer the ring can hold is made now, so a sender never
        // allocates: at most `submit_ring_len` sends are in flight. They start
        // at 1 KiB and grow (once each) if larger messages are sent.
        for _ in 0..self.config.submit_ring_len {
            let _ = shared.free.push(Vec::with_capacity(
                self.config.core.payload_max.min(SEND_BUFFER_START),
            ));
        }
        let config = self.config.clone();
        let started = Engine::start(self.config, Arc::clone(&shared), control_rx, self.handlers)?;
        let local = started.local;
        let engine = started.engine;
        let thread = std::thread::Builder::new()
            .name(format!("osiris-data-{}", config.core.node.0))
            .spawn(move || engine.run())
            .map_err(|error| RuntimeError::Thread(error.to_string()))?;
        Ok(Node {
            inner: Arc::new(NodeInner {
                shared,
                config,
                local,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

#[derive(Debug)]
struct NodeInner {
    shared: Arc<Shared>,
    config: RuntimeConfig,
    local: SocketAddr,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        let _ = self.shared.control(Control::Shutdown);
        if let Some(thread) = self.thread.lock().ok().and_then(|mut slot| slot.take()) {
            let _ = thread.join();
        }
    }
}

/// A running member. Cheap to clone; every clone drives the same node, from
/// any thread.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl Node {
    /// Starts a node from a config with no node-wide handlers.
    ///
    /// # Errors
    /// As for [`NodeBuilder::start`].
    pub fn start(config: RuntimeConfig) -> Result<Node, RuntimeError> {
        NodeBuilder::new(config).start()
    }

    /// The unicast address peers reach this node at.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Whether the data-plane thread has exited (shut down or stopped).
    pub fn is_stopped(&self) -> bool {
        self.inner.shared.stopped.load(Ordering::SeqCst)
    }

    /// A group to configure (handlers) and then join.
    pub fn group(&self, name: &str) -> GroupBuilder {
        GroupBuilder::new(self.clone(), name)
    }

    /// A snapshot of the counters (asks the data plane; not for hot loops).
    ///
    /// # Errors
    /// `Stopped` if the data plane has exited.
    pub fn stats(&self) -> Result<RuntimeStats, RuntimeError> {
        let (reply, answer) = mpsc::channel();
        self.inner.shared.control(Control::Stats { reply })?;
        answer.recv().map_err(|_| RuntimeError::Stopped)
    }

    /// Leaves the domain (every group) and stops the data plane; waits for
    /// the leave to be agreed, at most `leave_timeout`.
    pub fn shutdown(&self) {
        let _ = self.inner.shared.control(Control::Shutdown);
        if let Some(thread) = self
            .inner
            .thread
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
        {
            let _ = thread.join();
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }
}

//! Admission: whether a new connection is served (the policy, the
//! connection slots, some always kept for administrators, and the per-user
//! count), and if so its thread.

use super::conn::Conn;
use super::frame;
use super::rule::Rule;
use super::{lock, logbook, Peer, Shared};
use rustix::net::sockopt::{self, Timeout};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use unimem_core::wire::{selector, Reply};

/// Decides whether to serve a new connection; if so, starts its thread.
pub(super) fn admit(shared: &Arc<Shared>, id: u64, sock: OwnedFd) {
    let peer = match super::sys::peer_cred(&sock) {
        Ok((pid, uid, gid)) => Peer {
            pid,
            uid,
            gid,
            groups: super::sys::peer_groups(&sock).unwrap_or_default(),
        },
        Err(e) => {
            shared.refusals.note(logbook::UNKNOWN_UID, || {
                format!("connection {id}: refused: cannot read peer credentials: {e}")
            });
            shared.counters.refused.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    let who = format!(
        "connection {id} (pid {}, uid {}, gid {})",
        peer.pid, peer.uid, peer.gid
    );
    let refuse = |rule: Rule, why: String| {
        shared.refusals.note(peer.uid, || {
            format!("{who}: refused: {}{why}", rule.describe())
        });
        shared.counters.refused.fetch_add(1, Ordering::SeqCst);
        let reply = Reply::error(selector::HANDSHAKE, rule.status(), rule.detail());
        let _ = frame::send(sock.as_fd(), reply.as_bytes(), &[]);
    };
    let policy = &shared.config.policy;
    if !policy.admits(&peer) {
        return refuse(Rule::Policy, String::new());
    }
    let limits = &shared.config.limits;
    let admin = policy.is_admin(&peer);
    let live = shared.counters.connections.load(Ordering::SeqCst);
    // Some slots are always left for administrators, so no set of users
    // can lock root out.
    let slots = if admin {
        limits.max_connections
    } else {
        limits
            .max_connections
            .saturating_sub(limits.admin_connections)
    };
    if live >= slots as u64 {
        let why = if admin {
            String::new()
        } else {
            format!(
                " ({} of {} slots are kept for administrators)",
                limits.admin_connections.min(limits.max_connections),
                limits.max_connections
            )
        };
        return refuse(Rule::Connections, why);
    }
    if !shared.user_connect(peer.uid, admin) {
        return refuse(
            Rule::UserConnections,
            format!(" ({} per user)", limits.max_user_connections),
        );
    }
    let timeouts = sockopt::set_socket_timeout(&sock, Timeout::Send, Some(limits.reply_timeout));
    if let Err(e) = timeouts {
        // Without it a client could hold a thread forever.
        shared.refusals.note(peer.uid, || {
            format!("{who}: refused: cannot set socket timeouts: {e}")
        });
        shared.counters.refused.fetch_add(1, Ordering::SeqCst);
        shared.user_disconnect(peer.uid, 0);
        return;
    }
    let sock = Arc::new(sock);
    shared.counters.connections.fetch_add(1, Ordering::SeqCst);
    lock(&shared.conns).insert(id, Arc::clone(&sock));
    shared
        .connection_lines
        .note(peer.uid, || format!("{who}: connected"));
    let thread_shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(format!("unimem-conn-{id}"))
        .spawn(move || {
            let mut conn = Conn::new(thread_shared, id, who, peer.uid, admin);
            conn.serve(&sock);
            conn.finish();
        });
    match spawned {
        Ok(t) => lock(&shared.threads).push(t),
        Err(e) => {
            shared.log(format!("connection {id}: cannot start its thread: {e}"));
            lock(&shared.conns).remove(&id);
            shared.counters.connections.fetch_sub(1, Ordering::SeqCst);
            shared.user_disconnect(peer.uid, 0);
        }
    }
}

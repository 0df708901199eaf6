//! One request on a raw connection and what the service answered, read
//! at the level of the wire format: replies decoded, refusals seen by the
//! rule that refused them.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use unimem::core::wire::{Header, Reply, Request, MAX_MESSAGE, VERSION};
use unimem::service::frame;
use unimem::service::rule::Rule;

/// The handshake every client starts with: this version only.
pub const HANDSHAKE: Request = Request::handshake(VERSION, VERSION);

/// A prepare of `length` bytes at `offset` of the fd sent with it, with no
/// client address and no surface id (Linux has neither).
pub fn prepare(offset: u64, length: u64) -> Request {
    Request::prepare(offset, length, 0, 0)
}

/// A buffer for one reply.
fn reply_buffer() -> Box<frame::FrameBuf> {
    Box::new([0u8; MAX_MESSAGE + 1])
}

/// Sends `req`, with `fd` if any; panics if it cannot be sent.
pub fn send(sock: &OwnedFd, req: &Request, fd: Option<BorrowedFd<'_>>) {
    let fds: Vec<_> = fd.into_iter().collect();
    frame::send(sock.as_fd(), &req.encode(), &fds).unwrap();
}

/// Sends `req` and returns the reply's bytes; panics if the connection
/// fails or ends first.
pub fn exchange(sock: &OwnedFd, req: &Request, fd: Option<BorrowedFd<'_>>) -> Vec<u8> {
    send(sock, req, fd);
    let mut buf = reply_buffer();
    let f = frame::recv(sock.as_fd(), &mut buf)
        .unwrap()
        .expect("a reply");
    buf[..f.len].to_vec()
}

/// Sends `req` and returns the reply decoded as a reply to it.
pub fn call(sock: &OwnedFd, req: &Request, fd: Option<BorrowedFd<'_>>) -> Reply {
    Reply::decode(req.selector(), &exchange(sock, req, fd)).unwrap()
}

/// The rule that refused a request, from its reply; None if it succeeded.
pub fn rule_of(reply: &[u8]) -> Option<Rule> {
    let h = Header::parse(reply).unwrap();
    (!h.status().is_success()).then(|| Rule::from_detail(h.detail.get()).expect("a rule"))
}

/// Receives a reply on a connection the service may have closed after
/// refusing it: a connection refused at admission is closed with the
/// request unread, so `ECONNRESET` comes first and the refusal the service
/// queued after it.
fn recv_past_reset(
    sock: &OwnedFd,
    buf: &mut frame::FrameBuf,
) -> Result<Option<frame::Frame>, rustix::io::Errno> {
    match frame::recv(sock.as_fd(), buf) {
        Err(rustix::io::Errno::CONNRESET) => frame::recv(sock.as_fd(), buf),
        other => other,
    }
}

/// Sends `req` (a send error is seen in the reply) and returns the rule
/// that refused it, None if it succeeded; panics if the connection ended.
pub fn refusal(sock: &OwnedFd, req: &Request, fd: Option<BorrowedFd<'_>>) -> Option<Rule> {
    let fds: Vec<_> = fd.into_iter().collect();
    let _ = frame::send(sock.as_fd(), &req.encode(), &fds);
    let mut buf = reply_buffer();
    let f = recv_past_reset(sock, &mut buf)
        .unwrap()
        .expect("a reply, not a closed connection");
    rule_of(&buf[..f.len])
}

/// Sends `req` and says what the service answered: `OK`, the refusing
/// rule's name, or `CLOSED` when the connection ended without a reply.
pub fn answer(sock: &OwnedFd, req: &Request, fd: Option<BorrowedFd<'_>>) -> String {
    let fds: Vec<_> = fd.into_iter().collect();
    let _ = frame::send(sock.as_fd(), &req.encode(), &fds);
    let mut buf = reply_buffer();
    let Ok(Some(f)) = recv_past_reset(sock, &mut buf) else {
        return "CLOSED".into();
    };
    match rule_of(&buf[..f.len]) {
        None => "OK".into(),
        Some(rule) => format!("{rule:?}"),
    }
}

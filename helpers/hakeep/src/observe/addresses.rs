//! The node's IP addresses, followed through rtnetlink events instead of forking `ip`.
//! Idle cost is one thread blocked in `recv`.

use std::collections::{BTreeSet, HashMap};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use log::{debug, error, warn};
use netlink_packet_core::{
    parse_string, DecodeError, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NlasIterator, Parseable, NLA_TYPE_MASK, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rustix::io::Errno;
use rustix::net::sockopt;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
const IFINFOMSG_LEN: usize = 16;
const RECV_BUF: usize = 64 * 1024;
const EVENT_SOCKET_BUF: usize = 1 << 20;
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);
const DUMP_ATTEMPTS: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const EADDRNOTAVAIL: i32 = Errno::ADDRNOTAVAIL.raw_os_error();

/// One address change as netlink reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEvent {
    pub interface: String,
    pub address: IpAddr,
    pub prefix: u8,
    pub added: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: kernel answered errno {code} ({})", std::io::Error::from_raw_os_error(*code))]
    Netlink { context: String, code: i32 },
    #[error("{context}: undecodable netlink reply: {source}")]
    Decode {
        context: String,
        #[source]
        source: DecodeError,
    },
    #[error("{context}: no answer from the kernel within {timeout:?}")]
    Timeout { context: String, timeout: Duration },
    #[error("no interface named {0:?}")]
    UnknownInterface(String),
}

fn io_err(context: &str, source: impl Into<std::io::Error>) -> AddressError {
    let context = context.to_string();
    AddressError::Io {
        context,
        source: source.into(),
    }
}

/// (ifindex, address, prefix): IPv4 allows one address twice with different prefixes.
type Key = (u32, IpAddr, u8);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Cache {
    links: HashMap<u32, String>,
    addrs: BTreeSet<Key>,
}

impl Cache {
    fn name(&self, index: u32) -> String {
        self.links
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("#{index}"))
    }

    fn index(&self, name: &str) -> Option<u32> {
        self.links
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(i, _)| *i)
    }

    fn event(&self, (index, address, prefix): Key, added: bool) -> AddressEvent {
        AddressEvent {
            interface: self.name(index),
            address,
            prefix,
            added,
        }
    }

    fn on_interface(&self, interface: &str) -> Vec<(IpAddr, u8)> {
        let Some(index) = self.index(interface) else {
            return Vec::new();
        };
        self.addrs
            .iter()
            .filter(|k| k.0 == index)
            .map(|k| (k.1, k.2))
            .collect()
    }

    fn has(&self, interface: &str, address: IpAddr) -> bool {
        self.on_interface(interface)
            .iter()
            .any(|(a, _)| *a == address)
    }

    fn all(&self) -> Vec<IpAddr> {
        let set: BTreeSet<IpAddr> = self.addrs.iter().map(|k| k.1).collect();
        set.into_iter().collect()
    }

    /// Applies one message; an event only when the address set really changed, because the
    /// kernel repeats RTM_NEWADDR for flag/lifetime updates (e.g. IPv6 DAD completion).
    fn apply(&mut self, msg: RouteNetlinkMessage, events: &mut Vec<AddressEvent>) {
        match msg {
            RouteNetlinkMessage::NewLink(m) => {
                if let Some(name) = link_name(&m) {
                    self.links.insert(m.header.index, name);
                }
            }
            // An AF_BRIDGE DELLINK only means "left a bridge": the device still exists.
            RouteNetlinkMessage::DelLink(m)
                if m.header.interface_family != AddressFamily::Bridge =>
            {
                let index = m.header.index;
                let (gone, kept) = std::mem::take(&mut self.addrs)
                    .into_iter()
                    .partition(|k| k.0 == index);
                self.addrs = kept;
                events.extend(gone.into_iter().map(|k: Key| self.event(k, false)));
                self.links.remove(&index);
            }
            RouteNetlinkMessage::NewAddress(m) => {
                if let Some(key) = address_key(&m) {
                    if self.addrs.insert(key) {
                        events.push(self.event(key, true));
                    }
                }
            }
            RouteNetlinkMessage::DelAddress(m) => {
                if let Some(key) = address_key(&m) {
                    if self.addrs.remove(&key) {
                        events.push(self.event(key, false));
                    }
                }
            }
            _ => {}
        }
    }

    /// The events that turn `self` into `new`.
    fn diff(&self, new: &Cache) -> Vec<AddressEvent> {
        let removed = self
            .addrs
            .difference(&new.addrs)
            .map(|k| self.event(*k, false));
        let added = new
            .addrs
            .difference(&self.addrs)
            .map(|k| new.event(*k, true));
        removed.chain(added).collect()
    }
}

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// IFA_LOCAL is the node's own address when present (point-to-point: IFA_ADDRESS is the peer).
/// The kernel does the same for IPv6 peers, so IFA_LOCAL is preferred for both families.
fn address_key(m: &AddressMessage) -> Option<Key> {
    let (mut local, mut address) = (None, None);
    for attribute in &m.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let want_v4 = match m.header.family {
        AddressFamily::Inet => true,
        AddressFamily::Inet6 => false,
        other => {
            debug!("ignoring address message of family {other:?}");
            return None;
        }
    };
    match local.or(address) {
        Some(ip) if ip.is_ipv4() == want_v4 => Some((m.header.index, ip, m.header.prefix_len)),
        _ => {
            warn!("skipping address message without a usable address: {m:?}");
            None
        }
    }
}

/// netlink-packet-route rejects a whole link message when any one attribute fails to parse;
/// the name matters too much to lose, so read ifinfomsg + IFLA_IFNAME by hand then.
fn fallback_link(kind: u16, payload: &[u8]) -> Option<RouteNetlinkMessage> {
    if kind != RTM_NEWLINK && kind != RTM_DELLINK {
        return None;
    }
    let header = payload.get(..IFINFOMSG_LEN)?;
    let mut m = LinkMessage::default();
    m.header.interface_family = header[0].into();
    m.header.index = u32::from_ne_bytes(header[4..8].try_into().ok()?);
    for nla in NlasIterator::new(&payload[IFINFOMSG_LEN..]) {
        let Ok(nla) = nla else { break };
        if nla.kind() & NLA_TYPE_MASK == IFLA_IFNAME {
            m.attributes
                .push(LinkAttribute::IfName(parse_string(nla.value()).ok()?));
        }
    }
    Some(if kind == RTM_NEWLINK {
        RouteNetlinkMessage::NewLink(m)
    } else {
        RouteNetlinkMessage::DelLink(m)
    })
}

type Payload = NetlinkPayload<RouteNetlinkMessage>;

/// Splits a datagram into its netlink messages (there can be several) and decodes each.
fn for_each_message(buf: &[u8], mut f: impl FnMut(NetlinkHeader, Result<Payload, DecodeError>)) {
    let mut offset = 0;
    while let Some(rest) = buf.get(offset..).filter(|r| !r.is_empty()) {
        let framed =
            NetlinkBuffer::new_checked(rest).and_then(|f| Ok((NetlinkHeader::parse(&f)?, f)));
        let (header, frame) = match framed {
            Ok(framed) => framed,
            Err(e) => {
                warn!(
                    "dropping {} bytes of malformed netlink data: {e}",
                    rest.len()
                );
                return;
            }
        };
        let len = frame.length() as usize;
        let decoded = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]) {
            Ok(m) => Ok(m.payload),
            Err(e) => match fallback_link(header.message_type, frame.payload()) {
                Some(m) => Ok(NetlinkPayload::InnerMessage(m)),
                None => Err(e),
            },
        };
        f(header, decoded);
        offset += (len + 3) & !3;
    }
}

/// Applies one event datagram to the cache; returns the changes to report.
fn handle_datagram(cache: &mut Cache, buf: &[u8]) -> Vec<AddressEvent> {
    let mut events = Vec::new();
    for_each_message(buf, |header, payload| match payload {
        Ok(NetlinkPayload::InnerMessage(m)) => cache.apply(m, &mut events),
        Ok(NetlinkPayload::Error(e)) if e.code.is_some() => warn!("netlink error event: {e}"),
        Ok(_) => {}
        Err(e) => warn!(
            "skipping undecodable netlink message type {}: {e}",
            header.message_type
        ),
    });
    events
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serialize(mut msg: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

fn open_event_socket() -> Result<(Socket, u32), AddressError> {
    let context = "opening the netlink event socket";
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| io_err(context, e))?;
    // A burst of changes must not overflow the queue; only root may exceed rmem_max.
    if sockopt::set_socket_recv_buffer_size_force(&sock, EVENT_SOCKET_BUF).is_err() {
        sockopt::set_socket_recv_buffer_size(&sock, EVENT_SOCKET_BUF)
            .map_err(|e| io_err(context, e))?;
    }
    let addr = sock.bind_auto().map_err(|e| io_err(context, e))?;
    for group in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] {
        sock.add_membership(group).map_err(|e| io_err(context, e))?;
    }
    Ok((sock, addr.port_number()))
}

struct Shared {
    cache: Mutex<Cache>,
    on_change: Box<dyn Fn(&AddressEvent) + Send + Sync>,
    /// Dumps and deletes; created in `start` so it stays in the caller's network namespace.
    request: Mutex<Socket>,
    seq: AtomicU32,
    event_port: AtomicU32,
    stop: AtomicBool,
}

impl Shared {
    fn notify(&self, events: &[AddressEvent]) {
        for event in events {
            // A panicking callback must not kill the watcher.
            if catch_unwind(AssertUnwindSafe(|| (self.on_change)(event))).is_err() {
                error!("address change callback panicked on {event:?}");
            }
        }
    }

    /// Sends one request and collects its answer until NLMSG_DONE or the ack.
    /// Returns the messages and whether the kernel flagged the dump as interrupted.
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        timeout: Duration,
        context: &str,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), AddressError> {
        let sock = lock(&self.request);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let packet = serialize(NetlinkMessage::new(header, NetlinkPayload::from(msg)));
        sock.send_to(&packet, &SocketAddr::new(0, 0), 0)
            .map_err(|e| io_err(context, e))?;
        let deadline = Instant::now() + timeout;
        let timed_out = || AddressError::Timeout {
            context: context.to_string(),
            timeout,
        };
        let mut buf = vec![0u8; RECV_BUF];
        let (mut replies, mut interrupted) = (Vec::new(), false);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            sockopt::set_socket_timeout(&*sock, sockopt::Timeout::Recv, Some(left))
                .map_err(|e| io_err(context, e))?;
            let n = match sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => n.min(buf.len()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(timed_out())
                }
                Err(e) => return Err(io_err(context, e)),
            };
            let mut outcome = None;
            for_each_message(&buf[..n], |header, payload| {
                // Late answers to an earlier, timed-out request carry another sequence number.
                if header.sequence_number != seq || outcome.is_some() {
                    return;
                }
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                // Both the ack and the end of a dump carry an errno (0: fine).
                let context = context.to_string();
                let errno = match payload {
                    Ok(NetlinkPayload::InnerMessage(m)) => {
                        replies.push(m);
                        return;
                    }
                    Ok(NetlinkPayload::Done(done)) => -done.code,
                    Ok(NetlinkPayload::Error(e)) => -e.raw_code(),
                    Ok(_) => return,
                    // Without the ack or the end marker we cannot tell how the request went.
                    Err(source) if matches!(header.message_type, NLMSG_ERROR | NLMSG_DONE) => {
                        outcome = Some(Err(AddressError::Decode { context, source }));
                        return;
                    }
                    Err(e) => {
                        warn!("{context}: skipping undecodable reply: {e}");
                        return;
                    }
                };
                outcome = Some(match errno {
                    0 => Ok(()),
                    code => Err(AddressError::Netlink { context, code }),
                });
            });
            if let Some(result) = outcome {
                return result.map(|()| (replies, interrupted));
            }
        }
    }

    /// Reads links, then addresses (so names are known), retrying a dump the kernel interrupted.
    fn dump(&self) -> Result<Cache, AddressError> {
        let context = "dumping links and addresses";
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut cache, mut interrupted, mut ignored) = (Cache::default(), false, Vec::new());
            let requests = [
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            ];
            for request in requests {
                let (replies, intr) = self.request(request, NLM_F_DUMP, DUMP_TIMEOUT, context)?;
                interrupted |= intr;
                replies
                    .into_iter()
                    .for_each(|m| cache.apply(m, &mut ignored));
            }
            if !interrupted || attempt >= DUMP_ATTEMPTS {
                if interrupted {
                    warn!("{context}: still interrupted after {attempt} attempts; using it");
                }
                return Ok(cache);
            }
        }
    }

    fn resync(&self) -> Result<(), AddressError> {
        let new = self.dump()?;
        let events = {
            let mut cache = lock(&self.cache);
            let events = cache.diff(&new);
            *cache = new;
            events
        };
        self.notify(&events);
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// The watcher thread: blocked in recv until the kernel has something to say.
fn run(shared: Arc<Shared>, mut sock: Socket) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let received = sock.recv(&mut &mut buf[..], 0);
        if shared.stopping() {
            debug!("netlink address watcher stopping");
            return;
        }
        match received {
            Ok(n) => {
                let events = handle_datagram(&mut lock(&shared.cache), &buf[..n.min(RECV_BUF)]);
                shared.notify(&events);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOBUFS) => {
                warn!("netlink event queue overflowed, events were lost; re-dumping");
                if let Err(e) = shared.resync() {
                    error!("re-dump after overflow failed: {e}");
                }
            }
            Err(e) => {
                error!("netlink event socket failed: {e}; reopening");
                match reopen(&shared) {
                    Some(new) => sock = new,
                    None => return,
                }
            }
        }
    }
}

fn reopen(shared: &Shared) -> Option<Socket> {
    let mut delay = Duration::from_secs(1);
    loop {
        std::thread::sleep(delay);
        if shared.stopping() {
            return None;
        }
        match open_event_socket() {
            Ok((sock, port)) => {
                shared.event_port.store(port, Ordering::Release);
                // Changes while we had no socket were missed.
                if let Err(e) = shared.resync() {
                    error!("re-dump after reopening failed: {e}");
                }
                return Some(sock);
            }
            Err(e) => error!("{e}; retrying in {delay:?}"),
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// The node's addresses, kept current from netlink (RTM_NEWADDR/RTM_DELADDR, and links for index→name).
pub struct Addresses {
    shared: Arc<Shared>,
}

impl Addresses {
    /// Opens a netlink route socket subscribed to IPv4/IPv6 address groups and the link group,
    /// dumps links and addresses, then follows changes on a thread named "netlink-addresses".
    /// `on_change` is called (from that thread) for every address added or removed after the
    /// start (not for the initial dump). On ENOBUFS it re-dumps and reports the differences.
    /// If the socket fails it logs, waits (1 s doubling to 30 s) and reopens, re-dumping.
    /// Everything lives in the calling thread's network namespace.
    pub fn start(
        on_change: impl Fn(&AddressEvent) + Send + Sync + 'static,
    ) -> Result<Arc<Addresses>, AddressError> {
        // Subscribe before dumping so no change falls between the dump and the events.
        let (events, port) = open_event_socket()?;
        let context = "opening the netlink request socket";
        let mut request = Socket::new(NETLINK_ROUTE).map_err(|e| io_err(context, e))?;
        request.bind_auto().map_err(|e| io_err(context, e))?;
        let shared = Arc::new(Shared {
            cache: Mutex::new(Cache::default()),
            on_change: Box::new(on_change),
            request: Mutex::new(request),
            seq: AtomicU32::new(0),
            event_port: AtomicU32::new(port),
            stop: AtomicBool::new(false),
        });
        *lock(&shared.cache) = shared.dump()?;
        let watcher = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("netlink-addresses".into())
            .spawn(move || run(watcher, events))
            .map_err(|e| io_err("spawning the netlink-addresses thread", e))?;
        Ok(Arc::new(Addresses { shared }))
    }

    /// Is `address` on `interface` now (from the cache, no syscall)?
    pub fn has(&self, interface: &str, address: IpAddr) -> bool {
        lock(&self.shared.cache).has(interface, address)
    }

    /// Every address on any interface (cache), sorted, without duplicates.
    pub fn all(&self) -> Vec<IpAddr> {
        lock(&self.shared.cache).all()
    }

    /// Addresses of one interface with prefix lengths (cache).
    pub fn on_interface(&self, interface: &str) -> Vec<(IpAddr, u8)> {
        lock(&self.shared.cache).on_interface(interface)
    }

    /// Re-reads links and addresses from the kernel; reports differences through on_change.
    pub fn resync(&self) -> Result<(), AddressError> {
        self.shared.resync()
    }

    /// Removes an address (RTM_DELADDR) and waits for the kernel's ack, bounded by `timeout`;
    /// "address not there" (EADDRNOTAVAIL) is success. The cache follows when the event arrives.
    /// IPv4 matches on IFA_LOCAL only (so point-to-point addresses match too); IPv6 needs the
    /// right prefix, otherwise the kernel answers EADDRNOTAVAIL.
    pub fn remove(
        &self,
        interface: &str,
        address: IpAddr,
        prefix: u8,
        timeout: Duration,
    ) -> Result<(), AddressError> {
        let index = lock(&self.shared.cache)
            .index(interface)
            .ok_or_else(|| AddressError::UnknownInterface(interface.to_string()))?;
        let (family, attribute) = match address {
            IpAddr::V4(_) => (AddressFamily::Inet, AddressAttribute::Local(address)),
            IpAddr::V6(_) => (AddressFamily::Inet6, AddressAttribute::Address(address)),
        };
        let mut m = AddressMessage::default();
        (m.header.index, m.header.prefix_len, m.header.family) = (index, prefix, family);
        m.attributes.push(attribute);
        let context = format!("removing {address}/{prefix} from {interface}");
        let msg = RouteNetlinkMessage::DelAddress(m);
        match self.shared.request(msg, NLM_F_ACK, timeout, &context) {
            Err(AddressError::Netlink {
                code: EADDRNOTAVAIL,
                ..
            }) => Ok(()),
            result => result.map(|_| ()),
        }
    }
}

impl Drop for Addresses {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the blocked watcher with a NOOP to its port (needs CAP_NET_ADMIN, as the agent
        // has); failing that, it exits at the next event.
        let port = self.shared.event_port.load(Ordering::Acquire);
        let noop = serialize(NetlinkMessage::new(
            Default::default(),
            NetlinkPayload::Noop,
        ));
        if let Err(e) = lock(&self.shared.request).send_to(&noop, &SocketAddr::new(port, 0), 0) {
            debug!("could not wake the netlink watcher: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::DefaultNla;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::process::Command;
    use std::sync::mpsc;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 250, 0, 7));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 7));

    /// Serialized like the kernel sends it, padded so messages can be concatenated.
    fn wire(msg: RouteNetlinkMessage) -> Vec<u8> {
        let mut buf = serialize(NetlinkMessage::from(msg));
        buf.resize((buf.len() + 3) & !3, 0);
        buf
    }

    fn link(index: u32, name: &str) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m
    }

    fn addr(index: u32, prefix: u8, attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = prefix;
        m.header.family = match attributes.first() {
            Some(AddressAttribute::Address(IpAddr::V6(_))) => AddressFamily::Inet6,
            _ => AddressFamily::Inet,
        };
        m.attributes = attributes;
        m
    }

    fn ev(interface: &str, address: IpAddr, prefix: u8, added: bool) -> AddressEvent {
        AddressEvent {
            interface: interface.into(),
            address,
            prefix,
            added,
        }
    }

    fn eth0() -> Cache {
        let mut cache = Cache::default();
        assert!(handle_datagram(
            &mut cache,
            &wire(RouteNetlinkMessage::NewLink(link(2, "eth0")))
        )
        .is_empty());
        cache
    }

    #[test]
    fn add_then_delete_ipv4_prefers_local() {
        let mut cache = eth0();
        let peer = IpAddr::V4(Ipv4Addr::new(10, 250, 0, 1));
        let m = addr(
            2,
            24,
            vec![AddressAttribute::Address(peer), AddressAttribute::Local(V4)],
        );
        let added = handle_datagram(
            &mut cache,
            &wire(RouteNetlinkMessage::NewAddress(m.clone())),
        );
        assert_eq!(added, vec![ev("eth0", V4, 24, true)]);
        assert!(cache.has("eth0", V4) && !cache.has("eth0", peer) && !cache.has("eth1", V4));
        // The kernel repeats NEWADDR on flag changes: not a change.
        assert!(handle_datagram(
            &mut cache,
            &wire(RouteNetlinkMessage::NewAddress(m.clone()))
        )
        .is_empty());
        let removed = handle_datagram(&mut cache, &wire(RouteNetlinkMessage::DelAddress(m)));
        assert_eq!(removed, vec![ev("eth0", V4, 24, false)]);
        assert!(!cache.has("eth0", V4) && cache.all().is_empty());
    }

    #[test]
    fn ipv6_address_and_rename() {
        let mut cache = eth0();
        let m = addr(2, 64, vec![AddressAttribute::Address(V6)]);
        let added = handle_datagram(&mut cache, &wire(RouteNetlinkMessage::NewAddress(m)));
        assert_eq!(added, vec![ev("eth0", V6, 64, true)]);
        assert!(handle_datagram(
            &mut cache,
            &wire(RouteNetlinkMessage::NewLink(link(2, "wan0")))
        )
        .is_empty());
        assert!(cache.has("wan0", V6) && !cache.has("eth0", V6));
        assert_eq!(cache.on_interface("wan0"), vec![(V6, 64)]);
    }

    #[test]
    fn several_messages_in_one_datagram() {
        let mut cache = Cache::default();
        let mut datagram = wire(RouteNetlinkMessage::NewLink(link(3, "bond0")));
        datagram.extend(wire(RouteNetlinkMessage::NewAddress(addr(
            3,
            24,
            vec![AddressAttribute::Local(V4)],
        ))));
        datagram.extend(wire(RouteNetlinkMessage::NewAddress(addr(
            3,
            64,
            vec![AddressAttribute::Address(V6)],
        ))));
        let events = handle_datagram(&mut cache, &datagram);
        assert_eq!(
            events,
            vec![ev("bond0", V4, 24, true), ev("bond0", V6, 64, true)]
        );
        assert_eq!(cache.all(), vec![V4, V6]);
    }

    #[test]
    fn link_removal_drops_its_addresses_but_bridge_dellink_does_not() {
        let mut cache = eth0();
        handle_datagram(
            &mut cache,
            &wire(RouteNetlinkMessage::NewAddress(addr(
                2,
                24,
                vec![AddressAttribute::Local(V4)],
            ))),
        );
        let mut bridge = link(2, "eth0");
        bridge.header.interface_family = AddressFamily::Bridge;
        assert!(
            handle_datagram(&mut cache, &wire(RouteNetlinkMessage::DelLink(bridge))).is_empty()
        );
        assert!(cache.has("eth0", V4));
        let events = handle_datagram(
            &mut cache,
            &wire(RouteNetlinkMessage::DelLink(link(2, "eth0"))),
        );
        assert_eq!(events, vec![ev("eth0", V4, 24, false)]);
        assert!(cache.links.is_empty());
    }

    #[test]
    fn name_survives_an_attribute_the_crate_rejects() {
        let mut m = link(7, "odd0");
        m.attributes
            .push(LinkAttribute::Other(DefaultNla::new(4, vec![1, 2]))); // IFLA_MTU, 2 bytes
        let bytes = wire(RouteNetlinkMessage::NewLink(m));
        assert!(NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).is_err());
        let mut cache = Cache::default();
        handle_datagram(&mut cache, &bytes);
        assert_eq!(cache.index("odd0"), Some(7));
    }

    #[test]
    fn diff_reports_what_a_redump_changed() {
        let mut old = eth0();
        handle_datagram(
            &mut old,
            &wire(RouteNetlinkMessage::NewAddress(addr(
                2,
                24,
                vec![AddressAttribute::Local(V4)],
            ))),
        );
        let mut new = eth0();
        handle_datagram(
            &mut new,
            &wire(RouteNetlinkMessage::NewAddress(addr(
                2,
                64,
                vec![AddressAttribute::Address(V6)],
            ))),
        );
        assert_eq!(
            old.diff(&new),
            vec![ev("eth0", V4, 24, false), ev("eth0", V6, 64, true)]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut valid = wire(RouteNetlinkMessage::NewLink(link(2, "eth0")));
        valid.extend(wire(RouteNetlinkMessage::NewAddress(addr(
            2,
            24,
            vec![AddressAttribute::Local(V4)],
        ))));
        let mut cache = Cache::default();
        for cut in 0..valid.len() {
            handle_datagram(&mut cache, &valid[..cut]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            handle_datagram(&mut cache, &bytes);
            let noise: Vec<u8> = (0..next() % 96).map(|_| next() as u8).collect();
            handle_datagram(&mut cache, &noise);
        }
    }

    fn ip(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn netns_of(task: &str) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/{task}/ns/net")).expect("reading netns link")
    }

    /// Tids of this process's threads whose name is "netlink-addresses" (comm keeps 15 bytes).
    fn watcher_tids() -> Vec<String> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("listing threads");
        let tids = tasks
            .filter_map(|t| t.ok())
            .map(|t| t.file_name().to_string_lossy().into_owned());
        tids.filter(|tid| {
            let comm =
                std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
            comm.trim() == "netlink-address"
        })
        .collect()
    }

    fn wait_for(rx: &mpsc::Receiver<AddressEvent>, want: &AddressEvent) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(got) if got == *want => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no event {want:?} within 5 s");
    }

    #[test]
    fn real_kernel_in_a_private_netns() {
        if !rustix::process::geteuid().is_root() {
            return println!("skipped: needs root");
        }
        // Only this thread (and what it spawns) enters the new namespace.
        std::thread::spawn(in_private_netns)
            .join()
            .expect("netns test thread failed");
    }

    fn in_private_netns() {
        let host = netns_of("thread-self");
        #[allow(deprecated)]
        // unshare_unsafe is the replacement but `unsafe`; NEWNET alone is sound
        rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET)
            .expect("unshare(CLONE_NEWNET)");
        let private = netns_of("thread-self");
        assert_ne!(host, private);
        // Before creating anything, prove children of this thread see only the fresh lo.
        let links = ip(&["-o", "link", "show"]);
        assert!(
            links.lines().count() == 1 && links.contains(": lo:"),
            "not a fresh netns: {links}"
        );
        // Some kernels (this CI's) lack the dummy driver; an empty bridge serves as well.
        let dummy = Command::new("ip")
            .args(["link", "add", "hkd0", "type", "dummy"])
            .output();
        if !dummy.is_ok_and(|o| o.status.success()) {
            ip(&["link", "add", "hkd0", "type", "bridge"]);
        }
        ip(&["link", "set", "hkd0", "up"]);

        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        let callback_gate = Arc::clone(&gate);
        let addrs = Addresses::start(move |e| {
            drop(lock(&callback_gate)); // lets the test stall the watcher
            let _ = tx.send(e.clone());
        })
        .expect("start");
        // The new thread names itself, so give it a moment.
        let mut watchers = watcher_tids();
        for _ in 0..200 {
            if !watchers.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            watchers = watcher_tids();
        }
        assert_eq!(watchers.len(), 1, "watcher threads: {watchers:?}");
        assert_eq!(
            netns_of(&format!("self/task/{}", watchers[0])),
            private,
            "watcher left the netns"
        );
        assert!(addrs.on_interface("hkd0").iter().all(|(a, _)| a.is_ipv6()));

        ip(&["addr", "add", "10.250.0.7/24", "dev", "hkd0"]);
        ip(&[
            "-6",
            "addr",
            "add",
            "fd00:250::7/64",
            "dev",
            "hkd0",
            "nodad",
        ]);
        wait_for(&rx, &ev("hkd0", V4, 24, true));
        wait_for(&rx, &ev("hkd0", V6, 64, true));
        assert!(addrs.has("hkd0", V4) && addrs.has("hkd0", V6) && !addrs.has("lo", V4));
        assert!(addrs.all().contains(&V4) && addrs.on_interface("hkd0").contains(&(V6, 64)));

        addrs
            .remove("hkd0", V4, 24, Duration::from_secs(2))
            .expect("remove v4");
        assert!(!ip(&["-o", "addr", "show", "dev", "hkd0"]).contains("10.250.0.7"));
        wait_for(&rx, &ev("hkd0", V4, 24, false));
        assert!(!addrs.has("hkd0", V4) && addrs.has("hkd0", V6));
        let absent = IpAddr::V4(Ipv4Addr::new(10, 250, 0, 99));
        addrs
            .remove("hkd0", absent, 24, Duration::from_secs(2))
            .expect("absent address is Ok");
        assert!(matches!(
            addrs.remove("nope0", absent, 24, Duration::from_secs(2)),
            Err(AddressError::UnknownInterface(_))
        ));

        // A change behind the cache's back (simulated) is reported by resync.
        lock(&addrs.shared.cache).addrs.retain(|k| k.1 != V6);
        addrs.resync().expect("resync");
        wait_for(&rx, &ev("hkd0", V6, 64, true));

        overflow_is_recovered(&addrs, &rx, &gate);
        drop(addrs);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !watcher_tids().is_empty() {
            assert!(Instant::now() < deadline, "watcher thread did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stalls the watcher in its callback while thousands of addresses are added, so the event
    /// queue overflows (ENOBUFS); afterwards every address must be reported exactly once.
    fn overflow_is_recovered(
        addrs: &Addresses,
        rx: &mpsc::Receiver<AddressEvent>,
        gate: &Mutex<()>,
    ) {
        use std::io::Write;
        const COUNT: usize = 6000;
        static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
        struct Capture;
        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata) -> bool {
                true
            }
            fn log(&self, record: &log::Record) {
                lock(&WARNINGS).push(record.args().to_string());
            }
            fn flush(&self) {}
        }
        let captured = log::set_logger(&Capture).is_ok();
        log::set_max_level(log::LevelFilter::Warn);

        let batch: String = (0..COUNT)
            .map(|i| format!("addr add 10.251.{}.{}/32 dev hkd0\n", i / 250, i % 250 + 1))
            .collect();
        let stall = lock(gate);
        let mut child = Command::new("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ip -batch");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(batch.as_bytes())
            .expect("feeding ip -batch");
        drop(stdin);
        assert!(child.wait().expect("ip -batch").success());
        drop(stall);

        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.len() < COUNT {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = rx.recv_timeout(left).expect("events after overflow");
            if matches!(event.address, IpAddr::V4(a) if a.octets()[1] == 251) {
                assert!(event.added && seen.insert(event.address), "{event:?} twice");
            }
        }
        let on_hkd0 = addrs.on_interface("hkd0");
        assert_eq!(on_hkd0.iter().filter(|(a, _)| a.is_ipv4()).count(), COUNT);
        if captured {
            assert!(
                lock(&WARNINGS).iter().any(|w| w.contains("overflowed")),
                "no ENOBUFS"
            );
        }
    }
}

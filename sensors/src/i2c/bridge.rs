//! An I2C bus over a Unix socket: the register-level simulators served by another process
//! (`aloft-agent simulate`), reached by the agent through the same driver code and the same
//! `I2c` trait as a Linux i2c-dev adapter.
//!
//! It exists so that the agent's own cost can be measured apart from the simulators', and
//! so that a simulator can be restarted, stalled or killed under a running agent the way a
//! real bus misbehaves. A bus path that is a Unix socket is a bridge (see
//! [`super::open_bus`]); on the glider, bus paths are i2c-dev nodes.
//!
//! The wire, little-endian, one request and one response per `transaction`:
//!
//! - request: `u32` body length, then the address (`u8`), the operation count (`u8`), and
//!   per operation its kind (`0` write, `1` read) and length (`u16`), followed by the bytes
//!   for a write;
//! - response: `u32` body length, then a status (`0` done, else a [`Status`] code), and for
//!   a done transaction the bytes of every read in order.
//!
//! Invariants: a request is bounded ([`MAX_OPERATIONS`], [`MAX_TRANSFER`]) and checked
//! whole before the handler sees it; a malformed request gets a
//! [`Status::MalformedRequest`] and its connection is closed, never a panic; the server
//! serves other connections whatever one client sends. The client waits at most
//! [`RESPONSE_TIMEOUT`] for an answer, so a hung simulator is a bus error the driver
//! reports, not a hung sensor thread.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use embedded_hal::i2c::{self, ErrorKind, NoAcknowledgeSource, Operation};

/// Most operations in one transaction (the drivers use at most two: write, then read).
pub const MAX_OPERATIONS: usize = 16;
/// Most bytes in one operation (the largest transfer of these devices is the BME280's
/// 26-byte calibration block).
pub const MAX_TRANSFER: usize = 4096;
/// How long a client waits for the answer to a transaction.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request body: every operation a write of the largest transfer.
const MAX_REQUEST: usize = 2 + MAX_OPERATIONS * (3 + MAX_TRANSFER);

/// How a transaction ended, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Every operation was done; the reads' bytes follow.
    Done = 0,
    /// No device acknowledged the address.
    NackAddress = 1,
    /// The device did not acknowledge a data byte.
    NackData = 2,
    /// Not acknowledged, without saying where.
    NackUnknown = 3,
    /// A bus error (misplaced START or STOP).
    Bus = 4,
    /// Arbitration was lost.
    ArbitrationLoss = 5,
    /// The device could not keep up.
    Overrun = 6,
    /// Any other failure of the device.
    Other = 7,
    /// The request was not a well-formed transaction; the connection closes.
    MalformedRequest = 8,
}

impl Status {
    fn from_kind(kind: ErrorKind) -> Status {
        match kind {
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address) => Status::NackAddress,
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data) => Status::NackData,
            ErrorKind::NoAcknowledge(_) => Status::NackUnknown,
            ErrorKind::Bus => Status::Bus,
            ErrorKind::ArbitrationLoss => Status::ArbitrationLoss,
            ErrorKind::Overrun => Status::Overrun,
            _ => Status::Other,
        }
    }

    fn from_byte(byte: u8) -> Option<Status> {
        Some(match byte {
            0 => Status::Done,
            1 => Status::NackAddress,
            2 => Status::NackData,
            3 => Status::NackUnknown,
            4 => Status::Bus,
            5 => Status::ArbitrationLoss,
            6 => Status::Overrun,
            7 => Status::Other,
            8 => Status::MalformedRequest,
            _ => return None,
        })
    }

    fn kind(self) -> ErrorKind {
        match self {
            Status::NackAddress => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            Status::NackData => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data),
            Status::NackUnknown => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown),
            Status::Bus => ErrorKind::Bus,
            Status::ArbitrationLoss => ErrorKind::ArbitrationLoss,
            Status::Overrun => ErrorKind::Overrun,
            Status::Done | Status::Other | Status::MalformedRequest => ErrorKind::Other,
        }
    }
}

/// One operation of a decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOperation {
    /// Bytes to write.
    Write(Vec<u8>),
    /// How many bytes to read.
    Read(usize),
}

/// A decoded request: the address and its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The 7-bit address.
    pub address: u8,
    /// The operations, in order.
    pub operations: Vec<RequestOperation>,
}

/// Why a request body is not a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedRequest {
    /// The body ended inside a field.
    #[error("the request ends after {0} bytes, inside a field")]
    Truncated(usize),
    /// More operations than [`MAX_OPERATIONS`], or none.
    #[error("{0} operations (1 to {MAX_OPERATIONS} allowed)")]
    Operations(usize),
    /// An operation kind other than write (0) or read (1).
    #[error("operation kind {0} (0 write, 1 read)")]
    Kind(u8),
    /// A transfer longer than [`MAX_TRANSFER`].
    #[error("a transfer of {0} bytes (at most {MAX_TRANSFER})")]
    Transfer(usize),
    /// An address that is not 7-bit.
    #[error("address {0:#04x} is not a 7-bit address")]
    Address(u8),
    /// Bytes after the last operation.
    #[error("{0} bytes after the last operation")]
    Trailing(usize),
}

/// Encodes a transaction's request body (without the length prefix).
pub fn encode_request(address: u8, operations: &[Operation<'_>], out: &mut Vec<u8>) {
    out.push(address);
    out.push(u8::try_from(operations.len()).unwrap_or(u8::MAX));
    for op in operations {
        match op {
            Operation::Write(bytes) => {
                out.push(0);
                out.extend_from_slice(
                    &u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_le_bytes(),
                );
                out.extend_from_slice(bytes);
            }
            Operation::Read(buf) => {
                out.push(1);
                out.extend_from_slice(&u16::try_from(buf.len()).unwrap_or(u16::MAX).to_le_bytes());
            }
        }
    }
}

/// Decodes and checks a request body.
pub fn decode_request(body: &[u8]) -> Result<Request, MalformedRequest> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], MalformedRequest> {
        let field = body
            .get(at..at + n)
            .ok_or(MalformedRequest::Truncated(body.len()))?;
        at += n;
        Ok(field)
    };
    let address = take(1)?[0];
    if address > 0x7F {
        return Err(MalformedRequest::Address(address));
    }
    let count = usize::from(take(1)?[0]);
    if count == 0 || count > MAX_OPERATIONS {
        return Err(MalformedRequest::Operations(count));
    }
    let mut operations = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = take(1)?[0];
        let len_bytes = take(2)?;
        let len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
        if len > MAX_TRANSFER {
            return Err(MalformedRequest::Transfer(len));
        }
        operations.push(match kind {
            0 => RequestOperation::Write(take(len)?.to_vec()),
            1 => RequestOperation::Read(len),
            other => return Err(MalformedRequest::Kind(other)),
        });
    }
    if at != body.len() {
        return Err(MalformedRequest::Trailing(body.len() - at));
    }
    Ok(Request {
        address,
        operations,
    })
}

/// What serves the transactions of a bridge: the devices on the simulated bus.
pub trait BridgeHandler: Send + 'static {
    /// Does one transaction with the device at `address`, as `I2c::transaction` does.
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind>;
}

/// Runs `request` on `handler` and encodes the response body.
pub fn respond(handler: &mut dyn BridgeHandler, request: &Request, out: &mut Vec<u8>) {
    let mut reads: Vec<Vec<u8>> = request
        .operations
        .iter()
        .filter_map(|op| match op {
            RequestOperation::Read(len) => Some(vec![0; *len]),
            RequestOperation::Write(_) => None,
        })
        .collect();
    let mut read_buffers = reads.iter_mut();
    let mut ops: Vec<Operation<'_>> = request
        .operations
        .iter()
        .filter_map(|op| match op {
            RequestOperation::Write(bytes) => Some(Operation::Write(bytes)),
            RequestOperation::Read(_) => read_buffers.next().map(|b| Operation::Read(b)),
        })
        .collect();
    let result = handler.transaction(request.address, &mut ops);
    drop(ops);
    match result {
        Ok(()) => {
            out.push(Status::Done as u8);
            for read in &reads {
                out.extend_from_slice(read);
            }
        }
        Err(kind) => out.push(Status::from_kind(kind) as u8),
    }
}

fn read_frame(stream: &mut impl Read, limit: usize, body: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {limit})"),
        ));
    }
    body.clear();
    body.resize(len, 0);
    stream.read_exact(body)?;
    Ok(true)
}

fn write_frame(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

/// A bridge server: the devices of `handler` on a Unix socket, one thread per client.
/// Stopped (and its socket file removed) by [`I2cBridge::stop`] or on drop.
pub struct I2cBridge {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    clients: Arc<Clients>,
    /// The acceptor's listening socket (a second descriptor of it), shut down to wake the
    /// acceptor: waking it by connecting to `path` fails once the file is gone.
    listener: UnixListener,
    acceptor: Option<JoinHandle<()>>,
}

/// The connected clients, by connection number, so that [`I2cBridge::disconnect_clients`]
/// can cut them off; a client's entry leaves with its thread, so its socket closes then.
type Clients = Mutex<std::collections::HashMap<u64, UnixStream>>;

impl fmt::Debug for I2cBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("I2cBridge")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl I2cBridge {
    /// Serves `handler` on a new socket at `path` (a stale socket file there is replaced).
    pub fn spawn(path: impl AsRef<Path>, handler: impl BridgeHandler) -> io::Result<I2cBridge> {
        let path = path.as_ref().to_path_buf();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        }) {
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        let wake = listener.try_clone()?;
        let handler: Arc<Mutex<dyn BridgeHandler>> = Arc::new(Mutex::new(handler));
        let stopping = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(Clients::default());
        let acceptor = {
            let (stopping, clients, path) =
                (Arc::clone(&stopping), Arc::clone(&clients), path.clone());
            std::thread::Builder::new()
                .name("i2c-bridge".into())
                .spawn(move || accept(listener, &path, handler, &stopping, &clients))?
        };
        tracing::info!(path = %path.display(), "Serving the simulated I2C bus.");
        Ok(I2cBridge {
            path,
            stopping,
            clients,
            listener: wake,
            acceptor: Some(acceptor),
        })
    }

    /// The socket's path: the `bus` of the sensors on this bridge.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cuts every client off (their next transaction fails, as on a bus whose adapter
    /// vanished); new clients are still accepted.
    pub fn disconnect_clients(&self) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        for (_, client) in clients.drain() {
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Stops serving, cuts the clients off and removes the socket file.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor from its blocking accept: on Linux, accept on a listening
        // socket that was shut down fails at once.
        // SAFETY: shutdown(2) on a descriptor this bridge owns (`self.listener`), which
        // stays open for the call; it touches no memory.
        unsafe {
            libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        let _ = acceptor.join();
        self.disconnect_clients();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for I2cBridge {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn accept(
    listener: UnixListener,
    path: &Path,
    handler: Arc<Mutex<dyn BridgeHandler>>,
    stopping: &AtomicBool,
    clients: &Arc<Clients>,
) {
    for (number, stream) in (0u64..).zip(listener.incoming()) {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Accepting an I2C bridge client failed.");
                continue;
            }
        };
        if let Ok(clone) = stream.try_clone() {
            clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(number, clone);
        }
        let (handler, served) = (Arc::clone(&handler), Arc::clone(clients));
        let spawned = std::thread::Builder::new()
            .name("i2c-bridge-client".into())
            .spawn(move || {
                serve_client(stream, &handler);
                served
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&number);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Cannot start a thread for an I2C bridge client.");
            clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&number);
        }
    }
}

fn serve_client(mut stream: UnixStream, handler: &Mutex<dyn BridgeHandler>) {
    let mut body = Vec::new();
    let mut response = Vec::new();
    loop {
        match read_frame(&mut stream, MAX_REQUEST, &mut body) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "An I2C bridge client sent a bad frame; closing it.");
                let _ = write_frame(&mut stream, &[Status::MalformedRequest as u8]);
                return;
            }
        }
        response.clear();
        match decode_request(&body) {
            Ok(request) => {
                let mut handler = handler.lock().unwrap_or_else(|e| e.into_inner());
                respond(&mut *handler, &request, &mut response);
            }
            Err(e) => {
                tracing::warn!(error = %e, "An I2C bridge client sent a malformed transaction; closing it.");
                let _ = write_frame(&mut stream, &[Status::MalformedRequest as u8]);
                return;
            }
        }
        if write_frame(&mut stream, &response).is_err() {
            return;
        }
    }
}

/// Why a transaction over a bridge failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The device answered with a bus condition (a NACK, a bus error...).
    #[error("the device answered {0:?}")]
    Device(ErrorKind),
    /// The socket failed or the simulator did not answer in time.
    #[error("the I2C bridge failed: {0}")]
    Io(#[from] io::Error),
    /// The answer was not a well-formed response.
    #[error("the I2C bridge answered with a malformed response: {0}")]
    Protocol(String),
    /// The transaction is larger than the bridge carries.
    #[error("the transaction is larger than the bridge carries: {0}")]
    TooLarge(String),
}

impl i2c::Error for BridgeError {
    fn kind(&self) -> ErrorKind {
        match self {
            BridgeError::Device(kind) => *kind,
            _ => ErrorKind::Other,
        }
    }
}

/// The client end: an I2C bus whose devices live behind a bridge socket.
#[derive(Debug)]
pub struct BridgeBus {
    stream: UnixStream,
    /// The same socket, buffered: a response is taken in one receive, not two.
    responses: io::BufReader<UnixStream>,
    buffer: Vec<u8>,
}

impl BridgeBus {
    /// Connects to the bridge at `path`.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<BridgeBus> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        stream.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
        let responses = io::BufReader::new(stream.try_clone()?);
        Ok(BridgeBus {
            stream,
            responses,
            buffer: Vec::new(),
        })
    }
}

impl i2c::ErrorType for BridgeBus {
    type Error = BridgeError;
}

impl i2c::I2c for BridgeBus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        if operations.is_empty() || operations.len() > MAX_OPERATIONS {
            return Err(BridgeError::TooLarge(format!(
                "{} operations",
                operations.len()
            )));
        }
        let mut expected = 0usize;
        for op in operations.iter() {
            let len = match op {
                Operation::Write(b) => b.len(),
                Operation::Read(b) => {
                    expected += b.len();
                    b.len()
                }
            };
            if len > MAX_TRANSFER {
                return Err(BridgeError::TooLarge(format!("a transfer of {len} bytes")));
            }
        }
        self.buffer.clear();
        encode_request(address, operations, &mut self.buffer);
        write_frame(&mut self.stream, &self.buffer)?;
        if !read_frame(&mut self.responses, 1 + expected, &mut self.buffer)? {
            return Err(BridgeError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the simulator closed the bus",
            )));
        }
        let Some((&status, data)) = self.buffer.split_first() else {
            return Err(BridgeError::Protocol("an empty response".into()));
        };
        match Status::from_byte(status) {
            Some(Status::Done) => {}
            Some(Status::MalformedRequest) => {
                return Err(BridgeError::Protocol(
                    "the simulator refused the request".into(),
                ));
            }
            Some(other) => return Err(BridgeError::Device(other.kind())),
            None => return Err(BridgeError::Protocol(format!("status {status}"))),
        }
        if data.len() != expected {
            return Err(BridgeError::Protocol(format!(
                "{} bytes read where {expected} were asked for",
                data.len()
            )));
        }
        let mut at = 0;
        for op in operations.iter_mut() {
            if let Operation::Read(buf) = op {
                buf.copy_from_slice(&data[at..at + buf.len()]);
                at += buf.len();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::I2c;

    /// A bus with a 256-byte register file at 0x42: a write sets the register pointer
    /// and stores what follows, a read returns from the pointer on.
    struct Registers {
        pointer: u8,
        memory: [u8; 256],
        nack: bool,
    }

    impl BridgeHandler for Registers {
        fn transaction(
            &mut self,
            address: u8,
            operations: &mut [Operation<'_>],
        ) -> Result<(), ErrorKind> {
            if address != 0x42 {
                return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
            }
            if self.nack {
                return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data));
            }
            for op in operations {
                match op {
                    Operation::Write(bytes) => {
                        if let Some((&p, rest)) = bytes.split_first() {
                            self.pointer = p;
                            for (i, b) in rest.iter().enumerate() {
                                self.memory[usize::from(self.pointer.wrapping_add(i as u8))] = *b;
                            }
                        }
                    }
                    Operation::Read(buf) => {
                        for (i, b) in buf.iter_mut().enumerate() {
                            *b = self.memory[usize::from(self.pointer.wrapping_add(i as u8))];
                        }
                    }
                }
            }
            Ok(())
        }
    }

    fn registers() -> Registers {
        Registers {
            pointer: 0,
            memory: [0; 256],
            nack: false,
        }
    }

    #[test]
    fn a_request_round_trips_through_its_encoding() {
        let mut read = [0u8; 3];
        let ops = [Operation::Write(&[0xF4, 0x27]), Operation::Read(&mut read)];
        let mut body = Vec::new();
        encode_request(0x76, &ops, &mut body);
        assert_eq!(
            decode_request(&body).unwrap(),
            Request {
                address: 0x76,
                operations: vec![
                    RequestOperation::Write(vec![0xF4, 0x27]),
                    RequestOperation::Read(3)
                ],
            }
        );
    }

    #[test]
    fn malformed_requests_are_named() {
        assert_eq!(decode_request(&[]), Err(MalformedRequest::Truncated(0)));
        assert_eq!(
            decode_request(&[0x80, 1]),
            Err(MalformedRequest::Address(0x80))
        );
        assert_eq!(
            decode_request(&[0x42, 0]),
            Err(MalformedRequest::Operations(0))
        );
        assert_eq!(
            decode_request(&[0x42, 17]),
            Err(MalformedRequest::Operations(17))
        );
        assert_eq!(
            decode_request(&[0x42, 1, 2, 1, 0]),
            Err(MalformedRequest::Kind(2))
        );
        assert_eq!(
            decode_request(&[0x42, 1, 1, 0x01, 0x10]),
            Err(MalformedRequest::Transfer(4097))
        );
        assert_eq!(
            decode_request(&[0x42, 1, 0, 4, 0, 1, 2]),
            Err(MalformedRequest::Truncated(7))
        );
        assert_eq!(
            decode_request(&[0x42, 1, 1, 1, 0, 9]),
            Err(MalformedRequest::Trailing(1))
        );
    }

    #[test]
    fn any_bytes_decode_to_a_request_or_an_error_without_panicking() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (state.rotate_left(i as u32 * 5) & 0xFF) as u8)
                .collect();
            if let Ok(request) = decode_request(&bytes) {
                let mut again = Vec::new();
                let mut bufs: Vec<Vec<u8>> = Vec::new();
                for op in &request.operations {
                    if let RequestOperation::Read(n) = op {
                        bufs.push(vec![0; *n]);
                    }
                }
                let mut b = bufs.iter_mut();
                let ops: Vec<Operation<'_>> = request
                    .operations
                    .iter()
                    .filter_map(|op| match op {
                        RequestOperation::Write(w) => Some(Operation::Write(w)),
                        RequestOperation::Read(_) => b.next().map(|x| Operation::Read(x)),
                    })
                    .collect();
                encode_request(request.address, &ops, &mut again);
                assert_eq!(again, bytes);
            }
        }
    }

    #[test]
    fn writes_and_reads_reach_the_served_device_and_nacks_come_back_as_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = I2cBridge::spawn(dir.path().join("i2c.sock"), registers()).unwrap();
        let mut bus = BridgeBus::connect(bridge.path()).unwrap();
        bus.write(0x42, &[0x10, 1, 2, 3]).unwrap();
        let mut back = [0u8; 3];
        bus.write_read(0x42, &[0x10], &mut back).unwrap();
        assert_eq!(back, [1, 2, 3]);
        let err = bus.read(0x43, &mut back).unwrap_err();
        assert_eq!(
            i2c::Error::kind(&err),
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
        );
        // The bus still works after a NACK.
        bus.read(0x42, &mut back).unwrap();
        bridge.stop();
    }

    #[test]
    fn a_client_sending_garbage_is_closed_and_others_are_still_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i2c.sock");
        let bridge = I2cBridge::spawn(&path, registers()).unwrap();
        let mut hostile = UnixStream::connect(&path).unwrap();
        hostile.write_all(&[5, 0, 0, 0, 0x42, 1, 9, 0, 0]).unwrap();
        let mut answer = Vec::new();
        hostile.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, [1, 0, 0, 0, Status::MalformedRequest as u8]);
        // A length prefix far over the bound is refused before anything is allocated.
        let mut huge = UnixStream::connect(&path).unwrap();
        huge.write_all(&u32::MAX.to_le_bytes()).unwrap();
        let mut answer = Vec::new();
        huge.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, [1, 0, 0, 0, Status::MalformedRequest as u8]);
        let mut bus = BridgeBus::connect(&path).unwrap();
        bus.write(0x42, &[0, 7]).unwrap();
        bridge.stop();
        assert!(!path.exists(), "the socket file is removed on stop");
    }

    #[test]
    fn a_bridge_whose_socket_file_was_removed_still_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i2c.sock");
        let bridge = I2cBridge::spawn(&path, registers()).unwrap();
        let mut bus = BridgeBus::connect(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            bridge.stop();
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("stop returns without the socket file");
        assert!(bus.write(0x42, &[0, 7]).is_err(), "its clients are cut off");
    }

    #[test]
    fn a_vanished_bridge_is_an_error_and_a_new_connection_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i2c.sock");
        let mut served = registers();
        served.nack = true;
        let bridge = I2cBridge::spawn(&path, served).unwrap();
        let mut bus = BridgeBus::connect(&path).unwrap();
        assert!(matches!(
            bus.write(0x42, &[0]),
            Err(BridgeError::Device(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Data
            )))
        ));
        bridge.disconnect_clients();
        assert!(matches!(bus.write(0x42, &[0]), Err(BridgeError::Io(_))));
        bridge.stop();
        assert!(BridgeBus::connect(&path).is_err());
        let bridge = I2cBridge::spawn(&path, registers()).unwrap();
        let mut bus = BridgeBus::connect(&path).unwrap();
        bus.write(0x42, &[0, 1]).unwrap();
        bridge.stop();
    }

    #[test]
    fn a_simulator_that_never_answers_is_a_timeout_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i2c.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut bus = BridgeBus::connect(&path).unwrap();
        let _held = listener.accept().unwrap();
        let started = std::time::Instant::now();
        let err = bus.write(0x42, &[0]).unwrap_err();
        assert!(matches!(err, BridgeError::Io(_)), "{err}");
        assert!(started.elapsed() >= RESPONSE_TIMEOUT / 2);
    }
}

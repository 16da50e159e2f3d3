import BoxcarFlowControl
import GRPCCore
import NIOCore
import Synchronization

// Flow control of one HTTP/2 stream, both ways, where the transport and the call meet: what the
// agent sends waits within the stream's outbound window (OutboundWindow.swift), and what a client
// sends is counted in the budget of bytes held for clients from the moment its length is read
// until the call takes it (InboundBudget.swift).
//
// Each side has two halves that meet nowhere else: a channel handler on the stream, which sees
// HTTP/2 frames, and the call, which sees messages. The stream's inbound handler names the stream
// in a request header of its own (a client's header of that name is dropped), and the interceptor
// finds the stream's flow there.

/// One stream's outbound window and inbound ledger.
final class StreamFlow: Sendable {
    let window = OutboundWindow()
    let ledger: InboundLedger

    init(budget: ByteBudget) {
        ledger = InboundLedger(budget: budget)
    }
}

/// The flows of the streams open now, by the number their requests carry.
final class StreamFlows: Sendable {
    static let header = "boxcar-stream"
    private let open = Mutex<[UInt64: StreamFlow]>([:])
    private let next = Atomic<UInt64>(0)

    func add(_ flow: StreamFlow) -> UInt64 {
        let number = next.add(1, ordering: .relaxed).newValue
        open.withLock { $0[number] = flow }
        return number
    }

    func remove(_ number: UInt64) {
        _ = open.withLock { $0.removeValue(forKey: number) }
    }

    func flow(for metadata: Metadata) -> StreamFlow? {
        // The first value is the agent's own: the stream's handler drops any a client sent.
        for text in metadata[stringValues: Self.header] {
            guard let number = UInt64(text) else { return nil }
            return open.withLock { $0[number] }
        }
        return nil
    }
}

/// Gives back each request message's count as its call takes it, and makes each write wait for its
/// stream's window.
struct StreamFlowInterceptor: ServerInterceptor {
    let flows: StreamFlows

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let flow = flows.flow(for: request.metadata) else { return try await next(request, context) }
        var request = request
        let ledger = flow.ledger
        request.messages = RPCAsyncSequence(wrapping: request.messages.map { message in
            ledger.taken()
            return message
        })
        var response = try await next(request, context)
        guard case .success(var contents) = response.accepted else { return response }
        let producer = contents.producer
        let window = flow.window
        contents.producer = { writer in
            try await producer(RPCWriter(wrapping: WindowedWriter(base: writer, window: window)))
        }
        response.accepted = .success(contents)
        return response
    }
}

/// Writes each message when its stream's window lets it go.
private struct WindowedWriter<Element: Sendable>: RPCWriterProtocol {
    let base: RPCWriter<Element>
    let window: OutboundWindow

    func write(_ element: Element) async throws {
        try await window.reserve()
        try await base.write(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await write(element) }
    }
}

/// Where a run of DATA bytes stands among its gRPC messages: each is a flag byte, a 4-byte length
/// and that many bytes, and may start in one frame and end in a later one.
struct GRPCFraming {
    /// The next message's prefix bytes carried from earlier frames, and the bytes of the current
    /// message's body still to come.
    private var prefix: [UInt8] = []
    private var remaining = 0

    /// Whether a message has begun and not ended.
    var inMessage: Bool { remaining > 0 || !prefix.isEmpty }

    /// Reads `buffer` up to the next message whose length it now knows and returns that message's
    /// size (prefix and body), the reader index left where that message's bytes in this buffer
    /// begin (the rest of its prefix, when part came in an earlier frame), for `enter`; nil once
    /// all of the buffer is read. `ended` counts the messages whose last byte went by.
    mutating func next(in buffer: inout ByteBuffer, ended: inout Int) -> Int? {
        while buffer.readableBytes > 0 {
            if remaining > 0 {
                let skipped = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skipped)
                remaining -= skipped
                if remaining == 0 { ended += 1 }
                continue
            }
            guard prefix.count + buffer.readableBytes >= 5 else {
                prefix += buffer.readBytes(length: buffer.readableBytes) ?? []
                return nil
            }
            // The length's bytes, from the carried prefix and then in place from the buffer.
            var length = 0
            for index in 1..<5 {
                let byte = index < prefix.count ? prefix[index] : buffer.getInteger(at: buffer.readerIndex + index - prefix.count, as: UInt8.self) ?? 0
                length = length << 8 | Int(byte)
            }
            return 5 + length
        }
        return nil
    }

    /// Reads past the prefix of the message of `size` that `next` found.
    mutating func enter(_ buffer: inout ByteBuffer, size: Int, ended: inout Int) {
        buffer.moveReaderIndex(forwardBy: 5 - prefix.count)
        prefix.removeAll(keepingCapacity: true)
        remaining = size - 5
        if remaining == 0 { ended += 1 }
    }

    /// The messages whose last byte is in `buffer`.
    mutating func countEnded(in buffer: ByteBuffer) -> Int {
        var buffer = buffer
        var ended = 0
        while let size = next(in: &buffer, ended: &ended) { enter(&buffer, size: size, ended: &ended) }
        return ended
    }
}

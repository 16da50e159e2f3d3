@testable import BoxcarServer
import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

/// The outbound handler passes a large write on in pieces. gRPC's stream handler flushes from
/// inside that write when a piece makes the stream unwritable; the rest of the write must go out
/// with that flush too, or a unary answer's tail waits for trailers that wait for it.
@Suite struct OutboundFlowHandlerTests {
    /// Near the connection: says the stream is unwritable once it holds a few pieces, as an
    /// HTTP/2 stream does past its 8 KiB watermark.
    final class UnwritableAfterWrites: ChannelOutboundHandler {
        typealias OutboundIn = HTTP2Frame.FramePayload
        var writes = 0
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            writes += 1
            context.write(data, promise: promise)
            if writes == 3 { context.fireChannelWritabilityChanged() }
        }
    }

    /// Where gRPC's stream handler sits: it flushes when the stream turns unwritable, and not
    /// after a unary answer's message (it waits for the trailers).
    final class FlushWhenUnwritable: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        var flushes = 0
        func channelWritabilityChanged(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
            context.fireChannelWritabilityChanged()
        }
    }

    @Test func aFlushFromInsideAPiecedWriteSendsTheWholeWrite() throws {
        let flusher = FlushWhenUnwritable()
        let channel = EmbeddedChannel()
        let handler = OutboundFlowHandler(window: OutboundWindow(), stallTimeout: .seconds(60)) {}
        try channel.pipeline.syncOperations.addHandlers([UnwritableAfterWrites(), handler, flusher])

        // One gRPC message of 600,000 bytes: ten pieces.
        let body = 600_000
        var message = channel.allocator.buffer(capacity: body + 5)
        message.writeInteger(UInt8(0))
        message.writeInteger(UInt32(body))
        message.writeRepeatingByte(7, count: body)
        let written = channel.write(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(message))))

        #expect(flusher.flushes == 1)
        var sent = 0
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) {
            guard case .data(let data) = frame else { continue }
            sent += data.data.readableBytes
        }
        #expect(sent == body + 5)
        // The write's own promise is kept once its last piece is sent.
        var completed = false
        written.whenSuccess { completed = true }
        #expect(completed)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}

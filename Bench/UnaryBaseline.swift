import BoxcarAPI
import BoxcarEventLoop
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import NIOPosix
import SwiftProtobuf

/// What ingest-unary measures the agent against: a grpc-swift server on the same transport that
/// answers the ModelBox calls the scenario times and stores nothing (GetMetrics is answered with
/// the points the agent holds for it, made once), served by grpc-swift's defaults or as the agent
/// serves. It shares no code with the agent's services, so the gap between the two is what the
/// agent adds to the gRPC stack. Run by the bench as a child process (`boxcar-bench
/// --serve-unary-baseline SOCKET`), so that its CPU is counted as the agent's is, apart from the
/// client's.
struct UnaryBaseline: RegistrableRPCService {
    /// Serves on grpc-swift's defaults (NIO's shared event loops, calls on Swift's pool), or
    /// `onItsLoop` as the agent serves: one event loop, the calls run on it.
    static func serve(socketPath: String, onItsLoop: Bool) async throws {
        let group = onItsLoop ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : .singleton
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext, eventLoopGroup: group)
        try await withTaskExecutorPreference(onItsLoop ? EventLoopExecutor(group.next()) : nil) {
            try await GRPCServer(transport: transport, services: [UnaryBaseline()]).serve()
        }
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        typealias Method = Modelbox_ModelStore.Method
        Self.answer(Method.CreateExperiment.descriptor, Method.CreateExperiment.Input.self, in: &router) {
            Method.CreateExperiment.Output.with { $0.experimentID = "baseline" }
        }
        Self.answer(Method.LogMetrics.descriptor, Method.LogMetrics.Input.self, in: &router) { Method.LogMetrics.Output() }
        Self.answer(Method.LogEvent.descriptor, Method.LogEvent.Input.self, in: &router) { Method.LogEvent.Output() }
        Self.answer(Method.UpdateMetadata.descriptor, Method.UpdateMetadata.Input.self, in: &router) {
            Method.UpdateMetadata.Output.with { $0.numKeysWritten = 1 }
        }
        let points = Method.GetMetrics.Output.with {
            $0.metrics = [.with { metrics in
                metrics.key = "loss"
                metrics.values = (0..<UnaryMethod.pointsRead).map { step in
                    UnaryMethod.logMetrics.point("baseline", step: step).value
                }
            }]
        }
        Self.answer(Method.GetMetrics.descriptor, Method.GetMetrics.Input.self, in: &router) { points }
    }

    /// Registers `descriptor`: its request read whole, then `response` answered.
    private static func answer<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message>(
        _ descriptor: MethodDescriptor, _ input: Input.Type, in router: inout RPCRouter<some ServerTransport>,
        response: @escaping @Sendable () -> Output
    ) {
        router.registerHandler(
            forMethod: descriptor, deserializer: ProtobufDeserializer<Input>(), serializer: ProtobufSerializer<Output>()
        ) { request, _ in
            for try await _ in request.messages {}
            return StreamingServerResponse(single: ServerResponse(message: response()))
        }
    }
}

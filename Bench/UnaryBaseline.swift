import BoxcarAPI
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf

/// What ingest-unary measures the agent against: a grpc-swift server on the same transport that
/// answers ModelBox's CreateExperiment and LogMetrics and stores nothing. It shares no code with
/// the agent's services, so the gap between the two is what the agent adds to the gRPC stack.
/// Run by the bench as a child process (`boxcar-bench --serve-unary-baseline SOCKET`), so that
/// its CPU is counted as the agent's is, apart from the client's.
struct UnaryBaseline: RegistrableRPCService {
    static func serve(socketPath: String) async throws {
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
        try await GRPCServer(transport: transport, services: [UnaryBaseline()]).serve()
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Modelbox_ModelStore.Method.CreateExperiment.descriptor,
            deserializer: ProtobufDeserializer<Modelbox_CreateExperimentRequest>(),
            serializer: ProtobufSerializer<Modelbox_CreateExperimentResponse>()
        ) { request, _ in
            for try await _ in request.messages {}
            return StreamingServerResponse(single: ServerResponse(message: .with { $0.experimentID = "baseline" }))
        }
        router.registerHandler(
            forMethod: Modelbox_ModelStore.Method.LogMetrics.descriptor,
            deserializer: ProtobufDeserializer<Modelbox_LogMetricsRequest>(),
            serializer: ProtobufSerializer<Modelbox_LogMetricsResponse>()
        ) { request, _ in
            for try await _ in request.messages {}
            return StreamingServerResponse(single: ServerResponse(message: Modelbox_LogMetricsResponse()))
        }
    }
}

// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "boxcar",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "boxcar", targets: ["boxcar"]),
        .executable(name: "boxcar-bench", targets: ["boxcar-bench"]),
        .library(name: "BoxcarClient", targets: ["BoxcarClient"]),
        // A scripted stand-in for libnvidia-ml, for the tests: nothing links it; they dlopen it.
        .library(name: "FakeNVML", type: .dynamic, targets: ["CFakeNVML"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(
            url: "https://github.com/apple/swift-configuration", from: "1.4.0",
            traits: ["YAML"]),  // not the default JSON trait: nothing reads JSON configuration
        // Already in through swift-configuration's YAML trait: the file's shape is checked with it.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // OpenTelemetry's attribute names, which MetricNamingTests checks the agent's labels
        // against (the experimental ones, pinned to a minor version as the trait asks; no tracing).
        .package(
            url: "https://github.com/swift-otel/swift-otel-semantic-conventions", .upToNextMinor(from: "1.44.0"),
            traits: ["Experimental"]),
    ],
    targets: [
        // The system SQLite, reached through a module map and a small shim header.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3"),

        // Domain values, limits and validation. No I/O.
        .target(
            name: "BoxcarModel",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]),

        // Readers of the machine: /proc, /sys, NVML (dlopen). Knows nothing of storage.
        .target(name: "BoxcarSensors", dependencies: ["BoxcarModel", "CNVML"]),
        .target(name: "CNVML"),
        .target(name: "CFakeNVML", path: "Sources/CFakeNVML"),

        // Tasks run on a NIO event loop: how the server and the client avoid a thread hop a call.
        .target(name: "BoxcarEventLoop", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),

        // Waiting for room: the credits of a stream's window and the bytes held across streams.
        .target(name: "BoxcarFlowControl", dependencies: ["BoxcarModel"]),

        // The seam between the services and whatever stores records: the RecordStore protocol,
        // and where uploaded bytes are kept (ArtifactStore).
        .target(
            name: "BoxcarStorage",
            dependencies: ["BoxcarModel", .product(name: "Crypto", package: "swift-crypto")]),

        // The agent's SQLite store: schema, migrations, the single writer with group commit,
        // queries, retention.
        .target(
            name: "BoxcarStore",
            dependencies: [
                "BoxcarModel", "BoxcarStorage", "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),

        // The .proto files and the Swift code generated from them (committed), plus conversions.
        .target(
            name: "BoxcarAPI",
            dependencies: [
                "BoxcarModel",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            exclude: ["Protos"]),

        // The machine sampled on a schedule into the local store, and retention.
        .target(
            name: "BoxcarSampling",
            dependencies: [
                "BoxcarModel", "BoxcarSensors", "BoxcarStorage", "BoxcarStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        // The gRPC services over a RecordStore, and the listeners.
        .target(
            name: "BoxcarServer",
            dependencies: [
                "BoxcarAPI", "BoxcarFlowControl", "BoxcarModel", "BoxcarStorage",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),

        // Pictures of a run: charts as SVG (`boxcar plot`, the agent's page). No I/O.
        .target(name: "BoxcarCharts"),

        // What monitoring stacks read: the exposition name table, the Prometheus text and
        // OpenMetrics pages, the agent's own health counters. No I/O.
        .target(name: "BoxcarExposition", dependencies: ["BoxcarModel", "BoxcarSensors", "BoxcarSampling"]),

        // `--http`: /metrics, /healthz, /readyz and the agent's pages on Hummingbird.
        .target(
            name: "BoxcarHTTP",
            dependencies: [
                "BoxcarCharts", "BoxcarExposition", "BoxcarModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // `--remote-write`: the machine's series pushed as Prometheus remote write 1.0.
        .target(
            name: "BoxcarRemoteWrite",
            dependencies: [
                "BoxcarAPI", "BoxcarExposition", "BoxcarModel", "BoxcarStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),

        // The outbox shipped upstream: `boxcar agent --upstream`.
        .target(
            name: "BoxcarForwarding",
            dependencies: [
                "BoxcarAPI", "BoxcarModel", "BoxcarStorage", "BoxcarStore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        // `boxcar collector`: what agents forward, written into PostgreSQL.
        .target(
            name: "BoxcarCollector",
            dependencies: [
                "BoxcarAPI", "BoxcarModel", "BoxcarStorage",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        // A Swift client for the agent: the CLI, the tests and the benchmark use it.
        .target(
            name: "BoxcarClient",
            dependencies: [
                "BoxcarAPI", "BoxcarEventLoop", "BoxcarFlowControl", "BoxcarModel",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        .executableTarget(
            name: "boxcar",
            dependencies: [
                "BoxcarServer", "BoxcarSampling", "BoxcarClient", "BoxcarStore", "BoxcarStorage", "BoxcarEventLoop",
                "BoxcarModel", "BoxcarAPI", "BoxcarSensors", "BoxcarForwarding", "BoxcarCollector",
                "BoxcarExposition", "BoxcarHTTP", "BoxcarRemoteWrite", "BoxcarCharts",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Agent"),

        .executableTarget(
            name: "boxcar-bench",
            dependencies: [
                "BoxcarClient", "BoxcarStore", "BoxcarStorage", "BoxcarAPI", "BoxcarModel", "BoxcarSensors",
                "BoxcarExposition", "BoxcarSampling", "BoxcarEventLoop",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Bench",
            // The machine's values storage-host replays, and the script that records them.
            exclude: ["Traces"]),

        .testTarget(
            name: "BoxcarModelTests",
            dependencies: ["BoxcarModel", .product(name: "PropertyBased", package: "swift-property-based")]),
        // What several test targets share (a temporary directory that cleans up after itself).
        .target(name: "BoxcarTestSupport", path: "Tests/BoxcarTestSupport"),
        .testTarget(
            name: "BoxcarStoreTests", dependencies: ["BoxcarStore", "BoxcarStorage", "BoxcarModel", "BoxcarTestSupport"]),
        .testTarget(
            name: "BoxcarSensorsTests",
            dependencies: [
                "BoxcarSensors", "BoxcarTestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "OTelSemanticConventions", package: "swift-otel-semantic-conventions"),
            ]),
        .testTarget(
            name: "BoxcarAPITests",
            dependencies: [
                "BoxcarAPI", "BoxcarModel", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "BoxcarSamplingTests",
            dependencies: [
                "BoxcarSampling", "BoxcarSensors", "BoxcarStore", "BoxcarStorage", "BoxcarTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "BoxcarFlowControlTests", dependencies: ["BoxcarFlowControl"]),
        .testTarget(
            name: "BoxcarEventLoopTests",
            dependencies: ["BoxcarEventLoop", .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "BoxcarChartsTests", dependencies: ["BoxcarCharts", "BoxcarTestSupport"]),
        // The server's channel handlers on an embedded channel: what a real transport makes
        // happen only under some timings is made to happen every time.
        .testTarget(
            name: "BoxcarServerTests",
            dependencies: [
                "BoxcarServer", "BoxcarAPI", "BoxcarEventLoop", "BoxcarFlowControl",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(name: "BoxcarCollectorTests", dependencies: ["BoxcarCollector", "BoxcarModel"]),
        .testTarget(
            name: "BoxcarRemoteWriteTests",
            dependencies: [
                "BoxcarRemoteWrite", "BoxcarAPI", "BoxcarModel",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "BoxcarExpositionTests",
            dependencies: ["BoxcarExposition", "BoxcarModel", "BoxcarSampling", "BoxcarSensors", "BoxcarTestSupport"]),
        // End to end: the agent as `boxcar agent` runs it, in process, with a real client.
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "boxcar", "BoxcarServer", "BoxcarClient", "BoxcarAPI", "BoxcarStore", "BoxcarModel", "BoxcarSensors",
                "BoxcarFlowControl", "BoxcarTestSupport", "BoxcarHTTP", "BoxcarCharts",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
    ]
)

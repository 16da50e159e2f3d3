import BoxcarModel
import FoundationEssentials
import SwiftProtobuf

// BoxcarAPI: the wire contract. The .proto files (Protos/, excluded from the build), the Swift
// code generated from them once by Scripts/generate-protos.sh and committed (Generated/), and
// conversions between the wire messages and the domain values (here; pure functions: limits are
// checked where requests are handled, in BoxcarServer). GetMetricsEncoding writes the largest
// answer straight from columns. It knows nothing of stores, sockets or servers.

// MARK: Metadata values

extension JSONValue {
    public init(_ value: Google_Protobuf_Value) {
        switch value.kind {
        case .nullValue, nil: self = .null
        case .boolValue(let bool): self = .bool(bool)
        case .numberValue(let number): self = .number(number)
        case .stringValue(let string): self = .string(string)
        case .listValue(let list): self = .array(list.values.map(JSONValue.init))
        case .structValue(let object): self = .object(object.fields.mapValues(JSONValue.init))
        }
    }

    public var protobuf: Google_Protobuf_Value {
        var value = Google_Protobuf_Value()
        switch self {
        case .null: value.kind = .nullValue(.nullValue)
        case .bool(let bool): value.kind = .boolValue(bool)
        case .number(let number): value.kind = .numberValue(number)
        case .string(let string): value.kind = .stringValue(string)
        case .array(let values):
            value.kind = .listValue(Google_Protobuf_ListValue(values: values.map(\.protobuf)))
        case .object(let fields):
            var object = Google_Protobuf_Struct()
            object.fields = fields.mapValues(\.protobuf)
            value.kind = .structValue(object)
        }
        return value
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    public init(protobuf: [String: Google_Protobuf_Value]) {
        self = protobuf.mapValues(JSONValue.init)
    }

    public var protobuf: [String: Google_Protobuf_Value] { mapValues(\.protobuf) }
}

extension Modelbox_Metadata {
    public init(_ metadata: BoxcarModel.Metadata) {
        self.init()
        self.metadata = metadata.protobuf
    }

    public var domain: BoxcarModel.Metadata { .init(protobuf: metadata) }
}

// MARK: Times

extension Google_Protobuf_Timestamp {
    public init(nanoseconds: Nanoseconds) {
        let seconds = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        // Timestamps keep nanos in [0, 1e9): borrow a second for times before the epoch.
        if seconds.remainder < 0 {
            self.init(seconds: seconds.quotient - 1, nanos: Int32(seconds.remainder + 1_000_000_000))
        } else {
            self.init(seconds: seconds.quotient, nanos: Int32(seconds.remainder))
        }
    }

    /// Nanoseconds since the epoch, clamped to what an Int64 holds (years 1678 to 2262).
    public var nanoseconds: Nanoseconds {
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(Int64(nanos))
        if overflow2 { return .max }
        return sum
    }
}

// MARK: Enums

extension MLFramework {
    public init(_ framework: Modelbox_MLFramework) {
        self = MLFramework(rawValue: Int32(truncatingIfNeeded: framework.rawValue)) ?? .unknown
    }

    public var protobuf: Modelbox_MLFramework { Modelbox_MLFramework(rawValue: Int(rawValue)) ?? .unknown }
}

extension FileType {
    public init(_ type: Modelbox_FileType) {
        self = FileType(rawValue: Int32(truncatingIfNeeded: type.rawValue)) ?? .undefined
    }

    public var protobuf: Modelbox_FileType { Modelbox_FileType(rawValue: Int(rawValue)) ?? .undefined }
}

// MARK: Records

extension Modelbox_Experiment {
    public init(_ experiment: Experiment) {
        self.init()
        id = experiment.id
        name = experiment.name
        namespace = experiment.namespace
        owner = experiment.owner
        framework = experiment.framework.protobuf
        externalID = experiment.externalID
        createdAt = .init(nanoseconds: experiment.createdAt)
        updatedAt = .init(nanoseconds: experiment.updatedAt)
    }

    public var domain: Experiment {
        Experiment(
            id: id, name: name, namespace: namespace, owner: owner, framework: MLFramework(framework),
            task: "", externalID: externalID, createdAt: createdAt.nanoseconds,
            updatedAt: updatedAt.nanoseconds)
    }
}

extension Modelbox_FileMetadata {
    public init(_ file: FileRecord) {
        self.init()
        id = file.id
        parentID = file.parentID
        fileType = file.fileType.protobuf
        checksum = file.checksum
        path = file.path
        createdAt = .init(nanoseconds: file.createdAt)
        updatedAt = .init(nanoseconds: file.updatedAt)
    }

    public var domain: FileRecord {
        FileRecord(
            id: id, parentID: parentID, fileType: FileType(fileType), checksum: checksum, path: path,
            createdAt: createdAt.nanoseconds, updatedAt: updatedAt.nanoseconds)
    }
}

extension Modelbox_Event {
    public init(_ event: Event) {
        self.init()
        name = event.name
        source = Modelbox_EventSource.with { $0.name = event.source }
        wallclockTime = .init(nanoseconds: event.wallclock)
        // An event logged without metadata comes back without it, not with an empty set.
        if !event.metadata.isEmpty { metadata = Modelbox_Metadata(event.metadata) }
    }

    /// The domain event for `parentID`, stamped `createdAt`.
    public func domain(parentID: String, createdAt: Nanoseconds = 0) -> Event {
        Event(
            parentID: parentID, name: name, source: source.name,
            wallclock: hasWallclockTime ? wallclockTime.nanoseconds : 0,
            metadata: metadata.domain, createdAt: createdAt)
    }
}

extension Modelbox_Checkpoint {
    public init(_ checkpoint: Checkpoint, files: [FileRecord]) {
        self.init()
        id = checkpoint.id
        epoch = checkpoint.epoch
        experimentID = checkpoint.experimentID
        self.files = files.map(Modelbox_FileMetadata.init)
        metrics = checkpoint.metrics
        createdAt = .init(nanoseconds: checkpoint.createdAt)
        updatedAt = .init(nanoseconds: checkpoint.updatedAt)
    }
}

extension Modelbox_Model {
    public init(_ model: Model, files: [FileRecord]) {
        self.init()
        id = model.id
        name = model.name
        owner = model.owner
        namespace = model.namespace
        description_p = model.description
        task = model.task
        self.files = files.map(Modelbox_FileMetadata.init)
        createdAt = .init(nanoseconds: model.createdAt)
        updatedAt = .init(nanoseconds: model.updatedAt)
    }
}

extension Modelbox_ModelVersion {
    public init(_ version: ModelVersion, files: [FileRecord], metadata: BoxcarModel.Metadata) {
        self.init()
        id = version.id
        modelID = version.modelID
        name = version.name
        self.version = version.version
        description_p = version.description
        self.files = files.map(Modelbox_FileMetadata.init)
        self.metadata = Modelbox_Metadata(metadata)
        framework = version.framework.protobuf
        uniqueTags = version.uniqueTags
        createdAt = .init(nanoseconds: version.createdAt)
        updatedAt = .init(nanoseconds: version.updatedAt)
    }
}

// MARK: Metrics

extension MetricPoint {
    /// The point a ModelBox MetricsValue carries, or nil when it has no value.
    public init?(_ value: Modelbox_MetricsValue) {
        let metric: MetricValue
        switch value.value {
        case .fVal(let float): metric = .float(Double(float))
        case .sTensor(let string): metric = .string(string)
        case .bTensor(let data): metric = .bytes(Array(data))
        case nil: return nil
        }
        // ModelBox's wallclock is unsigned in a unit the client chose: keep the same 64 bits.
        self.init(step: value.step, wallclock: Int64(bitPattern: value.wallclockTime), value: metric)
    }
}

extension Modelbox_MetricsValue {
    public init(_ point: MetricPoint) {
        self.init()
        step = point.step
        wallclockTime = UInt64(bitPattern: point.wallclock)
        switch point.value {
        case .float(let double): value = .fVal(Float(double))
        case .string(let string): value = .sTensor(string)
        case .bytes(let bytes): value = .bTensor(Data(bytes))
        }
    }
}

extension Boxcar_V1_SeriesColumns {
    public init(key: String, columns: MetricColumns) {
        self.init()
        self.key = key
        step = columns.steps
        wallclock = columns.wallclocks
        value = columns.values
        for (index, other) in columns.nonFloat {
            switch other {
            case .string(let string): stringValues[UInt32(index)] = string
            case .bytes(let bytes): bytesValues[UInt32(index)] = Data(bytes)
            case .float: break
            }
        }
    }

    public var columns: MetricColumns {
        var columns = MetricColumns()
        columns.steps = step
        columns.wallclocks = wallclock
        columns.values = value
        for (index, string) in stringValues { columns.nonFloat[Int(index)] = .string(string) }
        for (index, bytes) in bytesValues { columns.nonFloat[Int(index)] = .bytes(Array(bytes)) }
        return columns
    }
}

extension Boxcar_V1_QueryStepCostsResponse {
    public init(_ costs: StepCosts) {
        self.init()
        key = costs.key
        interpolated = costs.interpolated
        steps = costs.steps.map { cost in
            .with {
                $0.step = cost.step
                $0.start = cost.start
                $0.end = cost.end
                if let value = cost.energyJoules { $0.energyJoules = value }
                if let value = cost.gpuUtilization { $0.gpuUtilization = value }
                if let value = cost.throttled { $0.throttled = value }
                if let value = cost.gpuMemoryPeakBytes { $0.gpuMemoryPeakBytes = value }
                if let value = cost.iowait { $0.iowait = value }
                if let value = cost.cpu { $0.cpu = value }
            }
        }
        if let value = costs.joulesPerStep { joulesPerStep = value }
        if let value = costs.stepsPerKilowattHour { stepsPerKilowattHour = value }
        if let value = costs.throttledShare { throttledShare = value }
    }
}

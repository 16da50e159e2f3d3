import BoxcarAPI
import BoxcarModel
import BoxcarStorage

// Every request that carries more than an id is checked the same way: its `validated(_:)` turns
// it into the domain value the store takes, every limit checked, or throws a ValidationError
// naming the field. The services call it first and hand the store nothing unchecked; a request
// of one id is checked where it is handled (`limits.checkParentID`).

extension Modelbox_CreateExperimentRequest {
    func validated(_ limits: Limits) throws -> NewExperiment {
        try limits.checkOwnedName(name: name, namespace: namespace, owner: owner, task: task)
        try limits.checkName(externalID, "external_id", required: false)
        return NewExperiment(
            name: name, namespace: namespace, owner: owner, framework: MLFramework(framework), task: task,
            externalID: externalID, metadata: try metadata.validated(limits))
    }
}

extension Limits {
    /// What experiments and models both carry: a required name, and an optional namespace, owner
    /// and task.
    fileprivate func checkOwnedName(name: String, namespace: String, owner: String, task: String) throws {
        try checkName(name, "name")
        try checkName(namespace, "namespace", required: false)
        try checkName(owner, "owner", required: false)
        try checkName(task, "task", required: false)
    }
}

extension Modelbox_Metadata {
    func validated(_ limits: Limits, _ field: String = "metadata") throws -> Metadata {
        let metadata = domain
        try limits.checkMetadata(metadata, field)
        return metadata
    }
}

extension Modelbox_LogMetricsRequest {
    func validated(_ limits: Limits) throws -> MetricColumns {
        try limits.checkWritableParentID(parentID)
        try limits.checkKey(key)
        guard hasValue, let point = MetricPoint(value) else {
            throw ValidationError("value must hold f_val, s_tensor or b_tensor")
        }
        try limits.checkMetricValue(point.value, key: key)
        return MetricColumns([point])
    }
}

extension Modelbox_Event {
    func validated(_ limits: Limits, parentID: String) throws -> Event {
        try validatedMeasuringMetadata(limits, parentID: parentID).event
    }

    /// The event, and the bytes of its metadata as JSON.
    func validatedMeasuringMetadata(_ limits: Limits, parentID: String) throws -> (event: Event, metadataBytes: Int) {
        try limits.checkName(name, "event name")
        try limits.checkName(source.name, "event source", required: false)
        let event = domain(parentID: parentID)
        let text = try limits.checkMetadata(event.metadata, "event metadata")
        return (event, text.utf8.count)
    }
}

extension Modelbox_FileMetadata {
    /// `parentRequired` is false where the request itself names the parent (files of a checkpoint
    /// or model).
    func validated(_ limits: Limits, parentRequired: Bool = true) throws -> NewFile {
        if parentRequired { try limits.checkWritableParentID(parentID, "file parent_id") }
        try limits.checkText(path, "path")
        try limits.checkLength(checksum, "checksum", max: limits.maxChecksumBytes)
        try limits.checkText(checksum, "checksum")
        return NewFile(parentID: parentID, fileType: FileType(fileType), checksum: checksum, path: path)
    }
}

extension Array<Modelbox_FileMetadata> {
    func validated(_ limits: Limits, parentRequired: Bool) throws -> [NewFile] {
        guard count <= limits.maxFilesPerRequest else {
            throw ValidationError("\(count) files; the limit is \(limits.maxFilesPerRequest) per call")
        }
        return try map { try $0.validated(limits, parentRequired: parentRequired) }
    }
}

extension Modelbox_CreateCheckpointRequest {
    func validated(_ limits: Limits) throws -> NewCheckpoint {
        try limits.checkParentID(experimentID, "experiment_id")
        try limits.checkCheckpointMetrics(metrics)
        let metadata = try metadata.validated(limits)
        return NewCheckpoint(
            experimentID: experimentID, epoch: epoch, metrics: metrics,
            files: try files.validated(limits, parentRequired: false), metadata: metadata)
    }
}

extension Modelbox_CreateModelRequest {
    func validated(_ limits: Limits) throws -> NewModel {
        try limits.checkOwnedName(name: name, namespace: namespace, owner: owner, task: task)
        try limits.checkText(description_p, "description")
        let metadata = try metadata.validated(limits)
        return NewModel(
            name: name, owner: owner, namespace: namespace, task: task, description: description_p,
            metadata: metadata, files: try files.validated(limits, parentRequired: false))
    }
}

extension Modelbox_CreateModelVersionRequest {
    func validated(_ limits: Limits) throws -> NewModelVersion {
        try limits.checkParentID(model, "model")
        try limits.checkName(name, "name", required: false)
        try limits.checkName(version, "version")
        try limits.checkText(description_p, "description")
        guard uniqueTags.count <= limits.maxTagsPerVersion else {
            throw ValidationError("\(uniqueTags.count) unique_tags; the limit is \(limits.maxTagsPerVersion)")
        }
        for tag in uniqueTags { try limits.checkName(tag, "unique_tags") }
        let metadata = try metadata.validated(limits)
        return NewModelVersion(
            modelID: model, name: name, version: version, description: description_p,
            framework: MLFramework(framework), uniqueTags: uniqueTags, metadata: metadata,
            files: try files.validated(limits, parentRequired: false))
    }
}

extension Boxcar_V1_LogBatch {
    /// The batch as domain values, every limit checked: the points grouped by series.
    func validated(_ limits: Limits) throws -> IngestBatch {
        // Once: `points` is a computed property of the generated message that copies the columns
        // on each read (with a retain and release of each array), which per point cost a third
        // of ingest's throughput (perf).
        let points = self.points
        let series = self.series
        let count = points.key.count
        guard points.step.count == count, points.wallclockNs.count == count, points.value.count == count else {
            throw ValidationError(
                "points columns differ in length: key \(count), step \(points.step.count), wallclock_ns \(points.wallclockNs.count), value \(points.value.count)")
        }
        let total = count + stringPoints.count + bytesPoints.count
        guard total <= limits.maxBatchPoints else {
            throw ValidationError("\(total) points in one batch; the limit is \(limits.maxBatchPoints)")
        }
        guard events.count + metadata.count <= limits.maxBatchRecords else {
            throw ValidationError(
                "\(events.count + metadata.count) events and metadata updates in one batch; the limit is \(limits.maxBatchRecords)")
        }
        guard series.count <= limits.maxBatchRecords else {
            throw ValidationError("\(series.count) series in one batch; the limit is \(limits.maxBatchRecords)")
        }
        for reference in series {
            try limits.checkWritableParentID(reference.parentID, "series parent_id")
            try limits.checkKey(reference.key)
        }
        let seriesCount = series.count
        var columns = [MetricColumns](repeating: MetricColumns(), count: seriesCount)
        for index in 0..<count {
            let key = Int(points.key[index])
            guard key < seriesCount else {
                throw ValidationError("point \(index) names series \(key); the batch has \(seriesCount)")
            }
            columns[key].append(step: points.step[index], wallclock: points.wallclockNs[index], value: points.value[index])
        }
        for point in stringPoints {
            let key = Int(point.key)
            guard key < seriesCount else { throw ValidationError("a string point names series \(key); the batch has \(seriesCount)") }
            try limits.checkMetricValue(.string(point.value), key: series[key].key)
            columns[key].append(MetricPoint(step: point.step, wallclock: point.wallclockNs, value: .string(point.value)))
        }
        for point in bytesPoints {
            let key = Int(point.key)
            guard key < seriesCount else { throw ValidationError("a bytes point names series \(key); the batch has \(seriesCount)") }
            let value = MetricValue.bytes(Array(point.value))
            try limits.checkMetricValue(value, key: series[key].key)
            columns[key].append(MetricPoint(step: point.step, wallclock: point.wallclockNs, value: value))
        }
        var ingest = IngestBatch()
        for (index, reference) in series.enumerated() where !columns[index].isEmpty {
            ingest.series.append(.init(parentID: reference.parentID, key: reference.key, columns: columns[index]))
        }
        for event in events {
            try limits.checkWritableParentID(event.parentID, "event parent_id")
            let (validated, bytes) = try event.event.validatedMeasuringMetadata(limits, parentID: event.parentID)
            ingest.events.append(validated)
            ingest.metadataTextBytes += bytes
        }
        for update in metadata {
            try limits.checkWritableParentID(update.parentID, "metadata parent_id")
            let metadata = Metadata(protobuf: update.metadata)
            ingest.metadataTextBytes += try limits.checkMetadata(metadata).utf8.count
            ingest.metadata.append(.init(parentID: update.parentID, metadata: metadata))
        }
        return ingest
    }
}

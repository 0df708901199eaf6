// CybMemHost -- activates or deactivates the CybMemDriver DEXT embedded in
// this app (Contents/Library/SystemExtensions/org.unimem.CybMemDriver.dext)
// through OSSystemExtensionRequest, the documented way to install a DEXT.
//
//   CybMemHost.app/Contents/MacOS/CybMemHost activate
//   CybMemHost.app/Contents/MacOS/CybMemHost deactivate
//
// Exits 0 when the request finished (or will finish after a reboot), 1 when
// it failed, 2 on bad usage. The first activation waits for the user to
// allow the extension in System Settings > Privacy & Security.

import Foundation
import SystemExtensions

let dextIdentifier = "org.unimem.CybMemDriver"

final class RequestDelegate: NSObject, OSSystemExtensionRequestDelegate {
    let action: String

    init(action: String) {
        self.action = action
    }

    func request(_ request: OSSystemExtensionRequest,
                 actionForReplacingExtension existing: OSSystemExtensionProperties,
                 withExtension ext: OSSystemExtensionProperties)
        -> OSSystemExtensionRequest.ReplacementAction
    {
        // The build stamps CFBundleVersion (bundleVersion) on every build, so a
        // rebuilt DEXT differs from the active one even at the same short version.
        print("CybMemHost: replacing \(existing.bundleShortVersion)/\(existing.bundleVersion) "
            + "with \(ext.bundleShortVersion)/\(ext.bundleVersion)")
        return .replace
    }

    func requestNeedsUserApproval(_ request: OSSystemExtensionRequest) {
        print("CybMemHost: waiting for approval: open System Settings > Privacy & Security and allow \(dextIdentifier)")
    }

    func request(_ request: OSSystemExtensionRequest,
                 didFinishWithResult result: OSSystemExtensionRequest.Result)
    {
        switch result {
        case .completed:
            print("CybMemHost: \(action) completed")
        case .willCompleteAfterReboot:
            print("CybMemHost: \(action) completes after a reboot")
        @unknown default:
            print("CybMemHost: \(action) finished with result \(result.rawValue)")
        }
        exit(0)
    }

    func request(_ request: OSSystemExtensionRequest, didFailWithError error: Error) {
        let ns = error as NSError
        FileHandle.standardError.write(
            "CybMemHost: \(action) failed: \(ns.localizedDescription) (\(ns.domain) \(ns.code))\n"
                .data(using: .utf8)!)
        exit(1)
    }
}

let arguments = CommandLine.arguments.dropFirst()
guard let action = arguments.first, arguments.count == 1,
      action == "activate" || action == "deactivate"
else {
    FileHandle.standardError.write("usage: CybMemHost activate|deactivate\n".data(using: .utf8)!)
    exit(2)
}

let request = action == "activate"
    ? OSSystemExtensionRequest.activationRequest(forExtensionWithIdentifier: dextIdentifier,
                                                 queue: .main)
    : OSSystemExtensionRequest.deactivationRequest(forExtensionWithIdentifier: dextIdentifier,
                                                   queue: .main)
let delegate = RequestDelegate(action: action)
request.delegate = delegate
OSSystemExtensionManager.shared.submitRequest(request)
print("CybMemHost: \(action) request for \(dextIdentifier) submitted")
dispatchMain()

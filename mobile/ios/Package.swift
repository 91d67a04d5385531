// swift-tools-version:5.9
import PackageDescription

// The Strava link client of the Coach George app: networking, contract models, PKCE, callback
// parsing, error mapping and the link flow (Services/), with its tests (Tests/). The SwiftUI
// screen (Features/Onboarding/ConnectStravaStep.swift) belongs to the app target, which depends
// on this package's library.

#if os(Linux)
// CryptoKit's API on Linux; Apple platforms use CryptoKit itself and fetch nothing.
let cryptoPackages: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
]
let cryptoProducts: [Target.Dependency] = [
    .product(name: "Crypto", package: "swift-crypto"),
]
#else
let cryptoPackages: [Package.Dependency] = []
let cryptoProducts: [Target.Dependency] = []
#endif

let package = Package(
    name: "StravaLinkService",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "StravaLinkService", targets: ["StravaLinkService"]),
    ],
    dependencies: cryptoPackages,
    targets: [
        .target(
            name: "StravaLinkService",
            dependencies: cryptoProducts,
            path: "Services"
        ),
        .testTarget(
            name: "StravaLinkTests",
            dependencies: ["StravaLinkService"],
            path: "Tests",
            resources: [.copy("Fixtures")]
        ),
    ]
)

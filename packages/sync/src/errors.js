"use strict";
var __extends = (this && this.__extends) || (function () {
    var extendStatics = function (d, b) {
        extendStatics = Object.setPrototypeOf ||
            ({ __proto__: [] } instanceof Array && function (d, b) { d.__proto__ = b; }) ||
            function (d, b) { for (var p in b) if (Object.prototype.hasOwnProperty.call(b, p)) d[p] = b[p]; };
        return extendStatics(d, b);
    };
    return function (d, b) {
        if (typeof b !== "function" && b !== null)
            throw new TypeError("Class extends value " + String(b) + " is not a constructor or null");
        extendStatics(d, b);
        function __() { this.constructor = d; }
        d.prototype = b === null ? Object.create(b) : (__.prototype = b.prototype, new __());
    };
})();
var __assign = (this && this.__assign) || function () {
    __assign = Object.assign || function(t) {
        for (var s, i = 1, n = arguments.length; i < n; i++) {
            s = arguments[i];
            for (var p in s) if (Object.prototype.hasOwnProperty.call(s, p))
                t[p] = s[p];
        }
        return t;
    };
    return __assign.apply(this, arguments);
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.SyncError = void 0;
exports.configError = configError;
var oci_1 = require("@stowage/oci");
var SyncError = /** @class */ (function (_super) {
    __extends(SyncError, _super);
    function SyncError(code, message, options) {
        if (options === void 0) { options = {}; }
        return _super.call(this, code, message, options) || this;
    }
    return SyncError;
}(oci_1.StowageError));
exports.SyncError = SyncError;
/** A configuration error naming its key: `registries[0].urls[1]: not a URL`. */
function configError(key, detail, origin) {
    return new SyncError('CONFIG_INVALID', "".concat(origin ? "".concat(origin, ": ") : '').concat(key, ": ").concat(detail), {
        details: __assign({ key: key, detail: detail }, (origin ? { origin: origin } : {})),
    });
}

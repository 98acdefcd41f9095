package dev.vqexport.demo.core;

import java.io.IOException;

/** A .tflite file whose FlatBuffer is damaged or is not a .tflite at all; the message names the file. */
public final class TfliteFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String reason;

    public TfliteFormatException(String file, String message) {
        super(VqmException.oneLine(file + ": " + message));
        this.reason = message;
    }

    /** The message without the file name. */
    public String reason() {
        return reason;
    }
}

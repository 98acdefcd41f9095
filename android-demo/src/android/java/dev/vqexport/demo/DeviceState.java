package dev.vqexport.demo;

import android.content.Context;
import android.content.Intent;
import android.content.IntentFilter;
import android.os.BatteryManager;
import android.os.Build;
import android.os.PowerManager;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What can make two runs of one model differ: thermal throttling and the charger. Recorded with
 * every row, before and after the model runs.
 */
final class DeviceState {
    private static final String[] THERMAL = {"none", "light", "moderate", "severe", "critical", "emergency", "shutdown"};

    private DeviceState() {
    }

    static Map<String, Object> read(Context ctx) {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        PowerManager pm = (PowerManager) ctx.getSystemService(Context.POWER_SERVICE);
        if (pm != null && Build.VERSION.SDK_INT >= 29) {
            int s = pm.getCurrentThermalStatus();
            m.put("thermal_status", s >= 0 && s < THERMAL.length ? THERMAL[s] : String.valueOf(s));
        } else {
            m.put("thermal_status", null); // API < 29 has no thermal status
        }
        if (pm != null && Build.VERSION.SDK_INT >= 30) {
            float h = pm.getThermalHeadroom(0);
            m.put("thermal_headroom", Float.isNaN(h) ? null : (Object) (double) h);
        }
        if (pm != null) {
            m.put("power_save", pm.isPowerSaveMode());
        }
        BatteryManager bm = (BatteryManager) ctx.getSystemService(Context.BATTERY_SERVICE);
        if (bm != null) {
            m.put("charging", bm.isCharging());
            int level = bm.getIntProperty(BatteryManager.BATTERY_PROPERTY_CAPACITY);
            m.put("battery_percent", level >= 0 && level <= 100 ? (Object) level : null);
        }
        // ACTION_BATTERY_CHANGED is sticky: registering a null receiver just reads the last one.
        IntentFilter f = new IntentFilter(Intent.ACTION_BATTERY_CHANGED);
        Intent battery = Build.VERSION.SDK_INT >= 33 ? ctx.registerReceiver(null, f, Context.RECEIVER_NOT_EXPORTED)
                : ctx.registerReceiver(null, f);
        if (battery != null) {
            int plugged = battery.getIntExtra(BatteryManager.EXTRA_PLUGGED, -1);
            m.put("plugged", plugged == 0 ? "none" : plugged == BatteryManager.BATTERY_PLUGGED_AC ? "ac"
                    : plugged == BatteryManager.BATTERY_PLUGGED_USB ? "usb"
                    : plugged == BatteryManager.BATTERY_PLUGGED_WIRELESS ? "wireless" : String.valueOf(plugged));
            int t = battery.getIntExtra(BatteryManager.EXTRA_TEMPERATURE, Integer.MIN_VALUE);
            m.put("battery_temp_c", t == Integer.MIN_VALUE ? null : (Object) (t / 10.0));
        }
        return m;
    }
}

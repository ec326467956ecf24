/*
 * ipmi_sim plugin: a Dell iDRAC's OEM fan commands (netfn 0x30), turning duty into fan rpm.
 *
 * Loaded with   loadlib "/path/oem_fan.so" "<dir> <first fan sensor number> <fan count>"
 * it answers, like an iDRAC8 (reference/fan-control.md (b)):
 *   0x30 0x01 0x00 / 0x01 0x01       manual / automatic fan control
 *   0x30 0x02 <fan|0xff> <0-100>     duty in percent (0xcc above 100 or a bad fan)
 *   0xce 0x01 16 05 00 00 00         third-party PCIe response: query
 *   0xce 0x00 16 05 00 00 00 05 00 <0|1> 00 00   enable / disable it
 * In automatic mode the fans run at the iDRAC's own duty: an 80 % floor while the third-party
 * response is enabled (an unrecognised GPU), else 15 %. Every duty change is written as rpm
 * (1600 + 160 per percent, the R730-class fan of gpuwatchd.sim.plant) into the value files
 * "<dir>/sensor-NN.val" that ipmi_sim polls for the fan sensors, so `ipmitool sdr` and
 * gpuwatchd read the new speed. State for the test, in <dir>: "oem.log" (one line of hex per
 * request), "fan.mode" (manual|auto), "fan.duty" (percent now in force). A file "oem.fault"
 * containing "d4" makes manual mode answer 0xd4 (iDRAC9 >= 3.34.34.34), "cc" makes every
 * duty write answer 0xcc. Written for gpuwatchd's tests (issue 4); built by the test.
 */
#include <stdio.h>
#include <string.h>
#include <OpenIPMI/serv.h>
#include <OpenIPMI/mcserv.h>

static char dir[400];
static int first_fan = 0x30, fan_count = 1;
static int manual = 0, pcie_enabled = 1, duty = 80;

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void put_text(const char *name, const char *text)
{
    char path[512], tmp[520];
    FILE *f;

    path_of(path, sizeof(path), name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fputs(text, f);
    fclose(f);
    rename(tmp, path);  /* readers never see a half-written file */
}

static int fault(const char *code)
{
    char path[512], text[16] = "";
    FILE *f;

    path_of(path, sizeof(path), "oem.fault");
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fgets(text, sizeof(text), f) == NULL)
        text[0] = 0;
    fclose(f);
    return strncmp(text, code, strlen(code)) == 0;
}

static void set_duty(int pct)
{
    char name[32], text[32];
    int i, raw = (1600 + 160 * pct) / 120;  /* fan SDR: 120 rpm per count, as on iDRACs */

    duty = pct;
    if (raw > 255)
        raw = 255;
    for (i = 0; i < fan_count; i++) {
        snprintf(name, sizeof(name), "sensor-%02x.val", first_fan + i);
        snprintf(text, sizeof(text), "%d\n", raw);
        put_text(name, text);
    }
    snprintf(text, sizeof(text), "%d\n", pct);
    put_text("fan.duty", text);
    put_text("fan.mode", manual ? "manual\n" : "auto\n");
}

static void auto_mode(void)
{
    manual = 0;
    set_duty(pcie_enabled ? 80 : 15);
}

static void log_request(msg_t *msg)
{
    char path[512];
    unsigned int i;
    FILE *f;

    path_of(path, sizeof(path), "oem.log");
    f = fopen(path, "a");
    if (f == NULL)
        return;
    fprintf(f, "%02x", msg->cmd);
    for (i = 0; i < msg->len; i++)
        fprintf(f, " %02x", msg->data[i]);
    fputc('\n', f);
    fclose(f);
}

static void answer(unsigned char *rdata, unsigned int *rdata_len, unsigned char cc)
{
    rdata[0] = cc;
    *rdata_len = 1;
}

static void fan_cmd(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                    unsigned int *rdata_len, void *cb_data)
{
    unsigned char *d = msg->data;

    log_request(msg);
    if (msg->len == 2 && d[0] == 0x01) {
        if (d[1] == 0x00) {
            if (fault("d4")) {
                answer(rdata, rdata_len, 0xd4);
                return;
            }
            manual = 1;
            put_text("fan.mode", "manual\n");
        } else {
            auto_mode();
        }
        answer(rdata, rdata_len, 0x00);
        return;
    }
    if (msg->len == 3 && d[0] == 0x02) {
        if (d[2] > 100 || (d[1] != 0xff && d[1] >= fan_count) || fault("cc")) {
            answer(rdata, rdata_len, 0xcc);
            return;
        }
        if (manual)
            set_duty(d[2]);
        answer(rdata, rdata_len, 0x00);
        return;
    }
    answer(rdata, rdata_len, 0xcc);
}

static void pcie_cmd(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                     unsigned int *rdata_len, void *cb_data)
{
    static const unsigned char head[] = {0x16, 0x05, 0x00, 0x00, 0x00};
    unsigned char *d = msg->data;

    log_request(msg);
    if (msg->len == 6 && d[0] == 0x01 && memcmp(d + 1, head, 5) == 0) {
        unsigned char reply[] = {0x00, 0x16, 0x05, 0x00, 0x00, 0x00, 0x05, 0x00,
                                 pcie_enabled ? 0x00 : 0x01, 0x00, 0x00};
        memcpy(rdata, reply, sizeof(reply));
        *rdata_len = sizeof(reply);
        return;
    }
    if (msg->len == 11 && d[0] == 0x00 && memcmp(d + 1, head, 5) == 0) {
        pcie_enabled = d[8] == 0x00;
        if (!manual)
            auto_mode();
        answer(rdata, rdata_len, 0x00);
        return;
    }
    answer(rdata, rdata_len, 0xcc);
}

static void oem_handler(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                        unsigned int *rdata_len, void *cb_data)
{
    if (msg->cmd == 0x30)
        fan_cmd(mc, msg, rdata, rdata_len, cb_data);
    else if (msg->cmd == 0xce)
        pcie_cmd(mc, msg, rdata, rdata_len, cb_data);
    else
        answer(rdata, rdata_len, 0xc1);
}

int ipmi_sim_module_init(sys_data_t *sys, const char *initstr)
{
    if (initstr == NULL || sscanf(initstr, "%399s %i %i", dir, &first_fan, &fan_count) < 1)
        return -1;
    auto_mode();
    ipmi_emu_register_cmd_handler(0x30, 0x30, oem_handler, NULL);
    ipmi_emu_register_cmd_handler(0x30, 0xce, oem_handler, NULL);
    return 0;
}

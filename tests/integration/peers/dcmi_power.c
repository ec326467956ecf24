/*
 * ipmi_sim plugin: DCMI Get Power Reading (netfn 0x2c, cmd 0x02, group extension 0xdc).
 *
 * Stock ipmi_sim answers 0xc1 to every DCMI command. Loaded with
 *   loadlib "/path/dcmi_power.so" "/path/watts.val"
 * it answers Get Power Reading with the watts written in watts.val (re-read on every request,
 * so a test changes the value by rewriting the file); with the file missing it answers 0xc1,
 * as a BMC without DCMI does. Cross-check: ipmitool -I lanplus -C 3 ... dcmi power reading.
 * Written for gpuwatchd's tests (issue 3); built with gcc -shared -fPIC by the fixture.
 */
#include <stdio.h>
#include <string.h>
#include <OpenIPMI/serv.h>
#include <OpenIPMI/mcserv.h>

static char path[512];

static void put16(unsigned char *p, unsigned int v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
}

static void dcmi_handler(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                         unsigned int *rdata_len, void *cb_data)
{
    unsigned int watts = 0;
    FILE *f;

    if (msg->cmd != 0x02 || msg->len < 4 || msg->data[0] != 0xdc) {
        rdata[0] = 0xc1;
        *rdata_len = 1;
        return;
    }
    f = fopen(path, "r");
    if (f == NULL || fscanf(f, "%u", &watts) != 1) {
        if (f != NULL)
            fclose(f);
        rdata[0] = 0xc1;
        *rdata_len = 1;
        return;
    }
    fclose(f);
    memset(rdata, 0, 19);
    rdata[1] = 0xdc;
    put16(rdata + 2, watts);  /* current */
    put16(rdata + 4, watts);  /* minimum */
    put16(rdata + 6, watts);  /* maximum */
    put16(rdata + 8, watts);  /* average */
    put16(rdata + 14, 1000);  /* sampling period, ms */
    rdata[18] = 0x40;         /* power measurement active */
    *rdata_len = 19;
}

int ipmi_sim_module_init(sys_data_t *sys, const char *initstr)
{
    snprintf(path, sizeof(path), "%s", initstr ? initstr : "");
    ipmi_emu_register_group_extension_handler(0xdc, dcmi_handler, NULL);
    return 0;
}
